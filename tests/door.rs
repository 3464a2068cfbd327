//! The door loop end to end on the host: three people enrolled from ../shared/faces, a recorded
//! camera replaying visits of them and of two people not enrolled, the in-memory relay pin
//! (a stand-in for GPIO that records every edge) and the in-memory PNG display. Then the
//! offline screen (a tiered gallery whose central store cannot be reached) and face crops in
//! the audit log, with the bundled fixture photos.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use facegate::access::daemon::{self, DaemonConfig, Record};
use facegate::access::decision::Refusal;
use facegate::access::door::{DoorEvent, UnlockBy};
use facegate::access::policy::Verdict;
use facegate::access::{AuditLog, EventFilter};
use facegate::camera::RecordedSource;
use facegate::gallery::milvus::MilvusStore;
use facegate::gallery::remote::{Changes, RemoteStore};
use facegate::gallery::{
    Cache, Gallery, GalleryError, Match, MilvusConfig, ModelTag, NewPerson, Person, Template,
    Tiered,
};
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
    let cache = common::open_cache(&dir);
    let enrolled = ["df_id01", "df_id02", "df_id03"];
    for id in enrolled {
        let photos = common::images_in(&deepface.join(id));
        common::enroll_photo(&rt, &cache, &mut p, id, &format!("Person {id}"), &photos[0]);
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
    let config = common::replay_config(THRESHOLD, 60_000, 400);
    let records = common::replay_door(common::models(), cache.clone(), &rt, hw, camera, config);

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

fn door_config(save_face_crops: bool) -> DaemonConfig {
    DaemonConfig {
        save_face_crops,
        ..common::replay_config(THRESHOLD, 60_000, 200)
    }
}

/// A folder of frames: each (fixture, count) in order.
fn frames(dir: &Path, plan: &[(&str, usize)]) -> std::path::PathBuf {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let mut n = 0;
    for (name, count) in plan {
        for _ in 0..*count {
            std::fs::copy(common::fixture(name), frames.join(format!("{n:04}.jpg"))).unwrap();
            n += 1;
        }
    }
    frames
}

/// A free loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn offline_screen_while_milvus_is_unreachable_and_face_crops_in_the_audit_log() {
    let dir = common::tmpdir("door-offline");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = common::cache_with_obama(&dir, &rt);
    // The real Milvus client, pointed at a port where nothing listens.
    let milvus = MilvusConfig {
        url: format!("http://127.0.0.1:{}", closed_port()),
        write_timeout_ms: 2000,
        ..MilvusConfig::default()
    };
    let model = ModelTag::new("mobilefacenet", 192);
    let remote = Arc::new(MilvusStore::new(&milvus, &model));
    let tiered = Arc::new(Tiered::new(Arc::clone(&cache), remote, &milvus, THRESHOLD));
    assert_eq!(tiered.online(), None, "not asked yet");
    let sync = rt.block_on(tiered.sync());
    assert!(sync.is_err(), "{sync:?}");
    assert_eq!(tiered.online(), Some(false));

    // An empty scene, Obama at the door, the empty scene again.
    let frames = frames(
        &dir,
        &[
            ("no_face_coffee.jpg", 3),
            ("obama_2.jpg", 6),
            ("no_face_coffee.jpg", 6),
        ],
    );
    let camera = RecordedSource::open(&frames, 4.0, false).unwrap();
    let (hw, mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    let gallery: Arc<dyn Gallery> = tiered.clone();
    let mut running = daemon::start(
        common::models(),
        VisionParams::default(),
        gallery,
        rt.handle().clone(),
        hw,
        camera,
        None,
        door_config(true),
        tx,
    )
    .unwrap();
    running.wait_camera_end();
    std::thread::sleep(Duration::from_millis(400));
    running.stop();
    let records: Vec<Record> = rx.try_iter().collect();

    // Decided from the cache while offline, and the display said so around the grant.
    let screens = mem.screens();
    let granted = Screen::Granted {
        name: "Barack Obama".into(),
    };
    let at = screens
        .iter()
        .position(|s| *s == granted)
        .unwrap_or_else(|| panic!("no grant: {screens:?} {records:#?}"));
    assert_eq!(screens.first(), Some(&Screen::Offline), "{screens:?}");
    assert!(screens[at..].contains(&Screen::Offline), "{screens:?}");
    assert_eq!(screens.last(), Some(&Screen::Offline), "{screens:?}");
    assert!(!screens.contains(&Screen::Idle), "{screens:?}");
    assert!(mem.relay.edges().iter().any(|e| e.high), "the door opened");

    // save_face_crops: the deciding frame's aligned crop travels with the decision, and the
    // audit log stores it as JPEG in the same step as the event.
    let audit = AuditLog::open(&dir.join("audit"), 100, &common::device_key(&dir)).unwrap();
    let mut stored = 0;
    for r in &records {
        if let Record::Decision { verdict, .. } = r {
            let Some(new) = r.audit_event() else { continue };
            let jpeg = new.face_jpeg.clone().expect("a crop with every decision");
            let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (112, 112));
            let e = audit.append(new).unwrap();
            assert!(e.face_crop);
            assert_eq!(audit.face_crop(e.id).unwrap(), Some(jpeg));
            assert!(matches!(verdict, Verdict::Granted { .. }), "{verdict:?}");
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "{records:#?}");
    let page = audit.query(&EventFilter::default(), None, 10).unwrap();
    assert!(page.events[0].face_crop);
    drop(audit);
    drop(tiered);
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in for the central store (not Milvus): answers or fails on demand.
#[derive(Default)]
struct TestOnlySwitchableRemote {
    up: AtomicBool,
}

impl TestOnlySwitchableRemote {
    fn check(&self) -> Result<(), GalleryError> {
        if self.up.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(GalleryError::RemoteUnavailable(
                "test stand-in is down".into(),
            ))
        }
    }
}

#[async_trait]
impl RemoteStore for TestOnlySwitchableRemote {
    fn describe(&self) -> String {
        "test-only switchable stand-in".into()
    }
    fn is_ready(&self) -> bool {
        true
    }
    async fn connect(&self) -> Result<(), GalleryError> {
        self.check()
    }
    async fn health(&self) -> Result<(), GalleryError> {
        self.check()
    }
    async fn upsert_person(&self, _: &Person) -> Result<(), GalleryError> {
        self.check()
    }
    async fn delete_person(&self, _: &str, _: &[u64], _: i64) -> Result<(), GalleryError> {
        self.check()
    }
    async fn upsert_templates(&self, _: &[Template]) -> Result<(), GalleryError> {
        self.check()
    }
    async fn delete_templates(&self, _: &[u64], _: i64) -> Result<(), GalleryError> {
        self.check()
    }
    async fn search(&self, _: &[f32], _: usize) -> Result<Vec<Match>, GalleryError> {
        self.check().map(|_| Vec::new())
    }
    async fn person(&self, _: &str) -> Result<Option<Person>, GalleryError> {
        self.check().map(|_| None)
    }
    async fn person_templates(&self, _: &str) -> Result<Vec<Template>, GalleryError> {
        self.check().map(|_| Vec::new())
    }
    async fn changes(&self, _: i64, _: i64, _: usize) -> Result<Option<Changes>, GalleryError> {
        self.check().map(|_| Some(Changes::default()))
    }
    async fn count_templates(&self) -> Result<u64, GalleryError> {
        self.check().map(|_| 0)
    }
}

/// Poll until `f` holds, up to `timeout`.
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn the_offline_screen_gives_way_to_idle_when_the_central_store_is_back() {
    let dir = common::tmpdir("door-online-again");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .unwrap(),
    );
    let remote = Arc::new(TestOnlySwitchableRemote::default());
    let config = MilvusConfig {
        url: "http://test-only.invalid:19530".into(),
        breaker_failures: 1,
        breaker_cooldown_ms: 100,
        ..MilvusConfig::default()
    };
    let tiered = Arc::new(Tiered::new(
        Arc::clone(&cache),
        remote.clone(),
        &config,
        THRESHOLD,
    ));
    assert!(rt.block_on(tiered.sync()).is_err());
    assert_eq!(tiered.online(), Some(false));

    // An empty scene on a loop, until stopped.
    let frames = frames(&dir, &[("no_face_coffee.jpg", 2)]);
    let camera = RecordedSource::open(&frames, 10.0, true).unwrap();
    let (hw, mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let (tx, _rx) = mpsc::channel();
    let gallery: Arc<dyn Gallery> = tiered.clone();
    let running = daemon::start(
        common::models(),
        VisionParams::default(),
        gallery,
        rt.handle().clone(),
        hw,
        camera,
        None,
        door_config(false),
        tx,
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || mem.screens().last()
            == Some(&Screen::Offline)),
        "{:?}",
        mem.screens()
    );
    // The central store answers again: the next sync (after the breaker's cool-down) says so.
    remote.up.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(150));
    rt.block_on(tiered.sync())
        .expect("sync with the store back");
    assert_eq!(tiered.online(), Some(true));
    let back = wait_until(Duration::from_secs(20), || {
        mem.screens().last() == Some(&Screen::Idle)
    });
    running.stop();
    let screens = mem.screens();
    assert!(back, "{screens:?}");
    assert_eq!(screens, vec![Screen::Offline, Screen::Idle]);
    drop(tiered);
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Liveness at the door: the person of ../shared/faces/antispoof is enrolled from one live
/// photo; a recorded camera replays two printed-photo visits and a phone-screen visit of them
/// (refused as not live, on the display and in the audit log) and two real visits (admitted).
/// Frames are the demo photos with their EXIF orientation applied, scaled to a camera's 640
/// pixels, 6 frames per visit and 4 empty frames between visits.
///
/// This tests the door's refusal path, not the detector's accuracy (`facegate eval
/// --liveness` measures that): the shipped rule lets the second screen replay
/// (`spoof_screen/F2_b.jpg`, network 0.03 in these frames) through, as the README reports; it
/// is not replayed here.
#[test]
fn a_print_and_a_phone_screen_of_an_enrolled_person_are_refused_as_not_live() {
    let Some(faces) = common::shared_faces() else {
        return;
    };
    let spoof = faces.join("antispoof");
    let dir = common::tmpdir("door-liveness");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let models = common::models()
        .clone()
        .with_liveness(
            &common::repo().join("models"),
            &facegate::vision::liveness::LivenessConfig::default(),
        )
        .unwrap();

    let camera_frame = |rel: &str| {
        let img = facegate::vision::frame::read_image(
            &spoof.join(rel),
            facegate::vision::frame::DEFAULT_MAX_PIXELS,
        )
        .unwrap();
        let s = 640.0 / img.width().max(img.height()) as f32;
        if s < 1.0 {
            image::imageops::resize(
                &img,
                (img.width() as f32 * s).round() as u32,
                (img.height() as f32 * s).round() as u32,
                image::imageops::FilterType::Triangle,
            )
        } else {
            img
        }
    };

    // Enroll from live/T1_a.jpg.
    let mut p = common::pipeline();
    let cache = Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .unwrap(),
    );
    let enrol = dir.join("enrol.png");
    camera_frame("live/T1_a.jpg").save(&enrol).unwrap();
    let e = common::embed_largest(&mut p, &enrol);
    rt.block_on(async {
        cache
            .create_person(NewPerson {
                id: Some("t1".into()),
                name: "Person T1".into(),
                ..NewPerson::default()
            })
            .await
            .unwrap();
        cache.add_templates("t1", vec![e.0]).await.unwrap();
    });

    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let empty = image::open(common::fixture("no_face_coffee.jpg"))
        .unwrap()
        .to_rgb8();
    let mut n = 0;
    let visits = [
        "spoof_print/F1_a.jpg",
        "spoof_screen/F2_a.jpg",
        "live/T1_b.jpg",
        "spoof_print/F1_b.jpg",
        "live/T2.jpg",
    ];
    for rel in visits {
        let f = camera_frame(rel);
        for _ in 0..6 {
            f.save(frames.join(format!("{n:04}.png"))).unwrap();
            n += 1;
        }
        for _ in 0..4 {
            empty.save(frames.join(format!("{n:04}.png"))).unwrap();
            n += 1;
        }
    }
    let camera = RecordedSource::open(&frames, 4.0, false).unwrap();
    let (hw, mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let mut config = door_config(false);
    // Each visit is one decision (the same person comes back 2.5 s later).
    config.policy.cooldown_ms = 1500;
    let records = common::replay_door(&models, cache.clone(), &rt, hw, camera, config);

    let decisions: Vec<&Verdict> = records
        .iter()
        .filter_map(|r| match r {
            Record::Decision { verdict, .. } => Some(verdict),
            _ => None,
        })
        .collect();
    for r in &records {
        if let Record::Decision {
            verdict, liveness, ..
        } = r
        {
            eprintln!("{verdict:?} liveness {liveness:?}");
        }
    }
    let not_live = decisions
        .iter()
        .filter(|v| {
            matches!(v, Verdict::Denied { person: Some(p), reason, .. }
                if p == "t1" && matches!(reason, Refusal::NotLive { .. }))
        })
        .count();
    let granted = decisions
        .iter()
        .filter(|v| matches!(v, Verdict::Granted { person, .. } if person == "t1"))
        .count();
    assert_eq!(not_live, 3, "the three attack visits: {decisions:#?}");
    assert_eq!(granted, 2, "the two real visits: {decisions:#?}");
    let unlocks = mem.relay.edges().iter().filter(|e| e.high).count();
    assert_eq!(unlocks, 2, "the door opened for the real visits only");
    assert!(
        mem.screens()
            .iter()
            .any(|s| matches!(s, Screen::Denied { reason } if reason.starts_with("not live"))),
        "{:?}",
        mem.screens()
    );

    // Audited: each refusal is a denied access event with the reason.
    let events = common::audited(&dir, &records);
    let refused = events
        .iter()
        .filter(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("not live"))
        })
        .count();
    assert_eq!(refused, 3, "{:#?}", events);
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}
