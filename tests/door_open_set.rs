//! The door end to end with a real gallery of 500 people: enrolled from ../shared/faces/lfw-dev
//! (one photo each), decided with the default configuration's rule (the calibrated threshold
//! for a visit at the gallery's size, from the embedder's model card). A recorded camera
//! replays visits of enrolled people (other photos of them) and of strangers (people with
//! several photos who are not enrolled): no stranger may be admitted; the enrolled are, at the
//! rate the open-set protocol measured for this rule (README).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use facegate::access::calibration::ProbeKind;
use facegate::access::daemon::{DaemonConfig, Record};
use facegate::access::door::DoorConfig;
use facegate::access::policy::{PolicyConfig, Verdict};
use facegate::access::recognition::RecognitionConfig;
use facegate::camera::RecordedSource;
use facegate::eval::{self, ImageOutcome, openset};
use facegate::gallery::{Cache, Gallery, ModelTag, NewPerson};
use facegate::hw::{Hardware, HwConfig};
use facegate::vision::VisionParams;

const ENROLLED: usize = 500;
/// Enrolled people who come to the door, and strangers who do.
const VISITORS: usize = 12;
const STRANGERS: usize = 12;

#[test]
fn with_500_enrolled_strangers_are_never_admitted_and_the_enrolled_are() {
    let Some(faces) = common::shared_faces() else {
        return;
    };
    let lfw = faces.join("lfw-dev");
    if !lfw.is_dir() {
        assert!(!common::in_ci(), "{} is missing under CI", lfw.display());
        eprintln!("SKIPPED: {} not found", lfw.display());
        return;
    }
    // People with two or more photos, in name order: the first 500 whose first photo passes
    // the enrollment checks are enrolled from it; people after the candidates are strangers.
    let ids: Vec<openset::Identity> = openset::read_identities(&lfw)
        .unwrap()
        .into_iter()
        .filter(|i| i.photos.len() >= 2)
        .collect();
    // Some first photos are refused (turned faces): embed a few more candidates than needed.
    let candidates = ENROLLED + ENROLLED / 10;
    assert!(ids.len() >= candidates + STRANGERS, "{}", ids.len());
    let models = common::models();
    let paths: Vec<PathBuf> = ids[..candidates]
        .iter()
        .map(|i| i.photos[0].clone())
        .collect();
    let embedded = eval::embed_images(
        models,
        &VisionParams::default(),
        &paths,
        2,
        facegate::vision::frame::DEFAULT_MAX_PIXELS,
    )
    .unwrap();

    let dir = common::tmpdir("door-open-set");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .unwrap(),
    );
    let mut enrolled: Vec<&openset::Identity> = Vec::new();
    for id in &ids[..candidates] {
        if enrolled.len() == ENROLLED {
            break;
        }
        let Some(ImageOutcome::Embedded(e)) = embedded.get(&id.photos[0]) else {
            continue;
        };
        rt.block_on(async {
            cache
                .create_person(NewPerson {
                    id: Some(id.name.clone()),
                    name: id.name.replace('_', " "),
                    ..NewPerson::default()
                })
                .await
                .unwrap();
            cache
                .add_templates(&id.name, vec![e.0.clone()])
                .await
                .unwrap();
        });
        enrolled.push(id);
    }
    assert!(
        enrolled.len() >= ENROLLED - 5,
        "{} enrolled",
        enrolled.len()
    );

    // The default configuration's rule, following the gallery.
    let op = RecognitionConfig::default()
        .operating_point(&models.embedder, ProbeKind::Visit)
        .expect("the shipped embedder card is calibrated");
    let counted = Arc::clone(&cache);
    op.follow(Box::new(move || counted.template_count()));
    let state = op.state();
    assert_eq!(state.templates, enrolled.len());
    assert_eq!(state.target_fpir, Some(1e-3));
    eprintln!("operating point: {state:?}");

    // Visits: 6 frames cycling through the visitor's other photos, then 3 empty frames.
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let empty = common::fixture("no_face_coffee.jpg");
    let mut n = 0;
    let mut put = |src: &Path| {
        std::fs::copy(src, frames.join(format!("{n:05}.jpg"))).unwrap();
        n += 1;
    };
    let step = enrolled.len() / VISITORS;
    let visitors: Vec<&openset::Identity> = (0..VISITORS)
        .map(|k| enrolled[k * step + step / 2])
        .collect();
    let strangers: Vec<&openset::Identity> = ids[candidates..].iter().take(STRANGERS).collect();
    let mut expected: HashMap<String, bool> = HashMap::new();
    for (k, id) in visitors
        .iter()
        .map(|v| (*v, true))
        .zip(strangers.iter().map(|s| (*s, false)))
        .flat_map(|(a, b)| [a, b])
        .enumerate()
    {
        let (person, is_enrolled) = id;
        let _ = k;
        expected.insert(person.name.clone(), is_enrolled);
        // An enrolled person's visit shows their other photos; a stranger's, all of theirs.
        let shown: Vec<&PathBuf> = if is_enrolled {
            person.photos[1..].iter().collect()
        } else {
            person.photos.iter().collect()
        };
        for f in 0..6 {
            put(shown[f % shown.len()]);
        }
        for _ in 0..3 {
            put(&empty);
        }
    }
    let camera = RecordedSource::open(&frames, 4.0, false).unwrap();
    let (hw, mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let config = DaemonConfig {
        policy: PolicyConfig {
            same_face: models.recommended_threshold().unwrap(),
            frames: 3,
            cooldown_ms: 60_000,
            anti_passback_ms: 0,
        },
        operating: Arc::new(op),
        door: DoorConfig {
            unlock_ms: 200,
            held_open_ms: 30_000,
        },
        top_k: 5,
        display_hold_ms: 100,
        workers: 2,
        save_face_crops: false,
        track: facegate::access::daemon::TrackConfig::default(),
    };
    let records = common::replay_door(models, cache.clone(), &rt, hw, camera, config);

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
    let decisions = records
        .iter()
        .filter(|r| matches!(r, Record::Decision { .. }))
        .count();
    eprintln!("{decisions} decisions, granted: {granted:?}");
    // Nobody but a visitor was admitted (no stranger, nobody else of the 500).
    for g in &granted {
        assert_eq!(
            expected.get(g),
            Some(&true),
            "{g} was admitted but did not come, or is a stranger"
        );
    }
    // The enrolled visitors: at this operating point the open-set protocol measured an FNIR of
    // about 30% per visit on LFW photos (README, open-set table), so not all of them; 8 of 12
    // on this fixed data when written. Fewer than half would be a regression.
    let admitted = visitors
        .iter()
        .filter(|v| granted.contains(&v.name))
        .count();
    assert!(
        admitted >= VISITORS / 2,
        "only {admitted} of {VISITORS} enrolled visitors admitted: {records:#?}"
    );
    // Every stranger was seen and refused (an unknown-face event, or the cooldown of one).
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
    assert!(unknown >= 1, "{records:#?}");
    assert_eq!(
        mem.relay.edges().iter().filter(|e| e.high).count(),
        granted.len()
    );
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}
