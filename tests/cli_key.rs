//! `facegate key rotate`: the gallery's and the audit log's data keys are wrapped again under
//! a new device key, which replaces the old key file; the old key opens nothing any more, the
//! data is all there under the new one. Interrupted (a new key made, nothing re-wrapped yet),
//! running it again finishes.

mod common;

use std::process::Command;

use facegate::access::{Action, AuditLog, EventSource, NewEvent, Outcome};
use facegate::crypto::{DeviceKey, KeySource};
use facegate::gallery::{Cache, ModelTag, NewPerson};

fn model() -> ModelTag {
    ModelTag::new("mobilefacenet", 192)
}

#[test]
fn rotation_rewraps_both_stores_and_retires_the_old_key() {
    let dir = common::tmpdir("cli-key");
    let config = common::gallery_config(&dir, "config.toml", &dir.join("gallery"));
    let old = common::device_key(&dir);
    {
        let cache = Cache::open(&dir.join("gallery"), &model(), &old).unwrap();
        cache
            .create_person_local(
                NewPerson {
                    id: Some("ada".into()),
                    name: "Ada Lovelace".into(),
                    ..NewPerson::default()
                },
                false,
            )
            .unwrap();
        let e: Vec<f32> = (0..192).map(|i| (i as f32 * 0.37).sin()).collect();
        cache.add_templates_local("ada", vec![e], false).unwrap();
        let log = AuditLog::open(&dir.join("audit"), 100, &old).unwrap();
        log.append(
            NewEvent::new(Action::Access, Outcome::Granted, EventSource::Door)
                .person("ada")
                .face_jpeg(vec![0xFF, 0xD8, 1, 2, 3]),
        )
        .unwrap();
    }
    // An interrupted rotation: its new key was written, nothing else happened.
    let pending = dir.join("device.key.new");
    let new = DeviceKey::create(&pending).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .arg("--config")
        .arg(&config)
        .args(["key", "rotate"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(!pending.exists());
    let now = DeviceKey::load(&KeySource::File(common::key_file(&dir))).unwrap();
    assert_eq!(
        now.check_value(),
        new.check_value(),
        "the pending key was used"
    );
    // The old key opens nothing; the new one everything.
    let e = Cache::open(&dir.join("gallery"), &model(), &old)
        .err()
        .unwrap();
    assert!(e.to_string().contains("another device key"), "{e}");
    assert!(AuditLog::open(&dir.join("audit"), 100, &old).is_err());
    let cache = Cache::open(&dir.join("gallery"), &model(), &now).unwrap();
    assert_eq!(
        cache.get_person("ada").unwrap().unwrap().name,
        "Ada Lovelace"
    );
    assert_eq!(cache.template_count(), 1);
    let log = AuditLog::open(&dir.join("audit"), 100, &now).unwrap();
    let events = log
        .query(&facegate::access::EventFilter::default(), None, 10)
        .unwrap()
        .events;
    assert_eq!(events[0].person.as_deref(), Some("ada"));
    assert_eq!(
        log.face_crop(events[0].id).unwrap(),
        Some(vec![0xFF, 0xD8, 1, 2, 3])
    );
    assert_eq!(log.verify().unwrap().broken, None);
    let _ = std::fs::remove_dir_all(&dir);
}
