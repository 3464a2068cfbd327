//! The door loop end to end on the host: three people enrolled from ../shared/faces, a recorded
//! camera replaying visits of them and of two people not enrolled, the in-memory relay pin
//! (a stand-in for GPIO that records every edge) and the in-memory PNG display.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use facegate::access::daemon::{self, DaemonConfig, Record};
use facegate::access::door::{DoorConfig, DoorEvent, UnlockBy};
use facegate::access::policy::{PolicyConfig, Verdict};
use facegate::camera::RecordedSource;
use facegate::gallery::{Cache, Gallery, ModelTag, NewPerson};
use facegate::hw::{Hardware, HwConfig, Screen};
use facegate::vision::VisionParams;

const THRESHOLD: f32 = 0.4122;

#[test]
fn enrolled_people_are_admitted_and_nobody_else() {
    let Some(faces) = common::shared_faces() else {
        return;
    };
    let deepface = faces.join("deepface");
    let dir = common::tmpdir("door");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Enroll df_id01..03 from their first photo.
    let mut p = common::pipeline();
    let cache =
        Arc::new(Cache::open(&dir.join("gallery"), &ModelTag::new("mobilefacenet", 192)).unwrap());
    let enrolled = ["df_id01", "df_id02", "df_id03"];
    for id in enrolled {
        let photos = common::images_in(&deepface.join(id));
        let e = common::embed_largest(&mut p, &photos[0]);
        rt.block_on(async {
            cache
                .create_person(NewPerson {
                    id: Some(id.into()),
                    name: format!("Person {id}"),
                    ..NewPerson::default()
                })
                .await
                .unwrap();
            cache.add_templates(id, vec![e.0]).await.unwrap();
        });
    }

    // The recorded camera: each visit is 6 frames of another photo of the visitor, then 4
    // frames of an empty scene.
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let empty = common::fixture("no_face_coffee.jpg");
    let mut n = 0;
    let mut put = |src: &Path| {
        std::fs::copy(src, frames.join(format!("{n:04}.jpg"))).unwrap();
        n += 1;
    };
    let visitors = ["df_id01", "df_id04", "df_id02", "df_id05", "df_id03"];
    for id in visitors {
        let photos = common::images_in(&deepface.join(id));
        for _ in 0..6 {
            put(&photos[1]);
        }
        for _ in 0..4 {
            put(&empty);
        }
    }
    let camera = RecordedSource::open(&frames, 4.0, false).unwrap();

    let (hw, mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    let config = DaemonConfig {
        policy: PolicyConfig {
            accept: THRESHOLD,
            reject: 0.30,
            frames: 3,
            cooldown_ms: 60_000,
            anti_passback_ms: 0,
        },
        door: DoorConfig {
            unlock_ms: 400,
            held_open_ms: 30_000,
        },
        top_k: 3,
        display_hold_ms: 300,
        workers: 2,
    };
    let gallery: Arc<dyn Gallery> = cache.clone();
    let mut running = daemon::start(
        common::models(),
        VisionParams::default(),
        gallery,
        rt.handle().clone(),
        hw,
        camera,
        None,
        config,
        tx,
    )
    .unwrap();
    running.wait_camera_end();
    std::thread::sleep(Duration::from_millis(600));
    running.stop();
    let records: Vec<Record> = rx.try_iter().collect();

    let granted: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::Decision {
                verdict: Verdict::Granted { person, .. },
                ..
            } => Some(person.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(granted, enrolled.to_vec(), "{records:#?}");
    let unknown = records
        .iter()
        .filter(|r| {
            matches!(
                r,
                Record::Decision {
                    verdict: Verdict::Unknown { .. },
                    ..
                }
            )
        })
        .count();
    assert!(unknown >= 1, "the unknown visitors were seen: {records:#?}");
    // Door events: one unlock by face per grant, each followed by a relock.
    let unlocks: Vec<&UnlockBy> = records
        .iter()
        .filter_map(|r| match r {
            Record::Door {
                event: DoorEvent::Unlocked { by },
                ..
            } => Some(by),
            _ => None,
        })
        .collect();
    assert_eq!(unlocks.len(), 3);
    let locks = records
        .iter()
        .filter(|r| {
            matches!(
                r,
                Record::Door {
                    event: DoorEvent::Locked,
                    ..
                }
            )
        })
        .count();
    assert_eq!(locks, 3);
    // The relay pin saw exactly three pulses and ends locked.
    let edges = mem.relay.edges();
    let to_unlocked = edges.iter().filter(|e| e.high).count();
    assert_eq!(to_unlocked, 3, "{edges:?}");
    assert!(!mem.relay_unlocked());
    // Each pulse lasted about unlock_ms.
    for pair in edges.windows(2).filter(|w| w[0].high && !w[1].high) {
        let held = pair[1].at - pair[0].at;
        assert!(
            held >= Duration::from_millis(400) && held < Duration::from_millis(1500),
            "{held:?}"
        );
    }
    // The display greeted each of them by name and refused the others.
    let screens = mem.screens();
    for id in enrolled {
        assert!(
            screens.contains(&Screen::Granted {
                name: format!("Person {id}")
            }),
            "{screens:?}"
        );
    }
    assert!(screens.contains(&Screen::Denied {
        reason: "Not recognised".into()
    }));
    for r in &records {
        if let Record::Door {
            latency_ms: Some(l),
            ..
        } = r
        {
            eprintln!("frame capture to relay edge: {l:.1} ms");
        }
    }
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}
