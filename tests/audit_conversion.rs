//! A plaintext audit log (the format before sealing) being converted to sealed, chained records
//! is killed with SIGKILL at several points of its conversion: the next open finishes or redoes
//! it, and every event (ids, times, persons, face crops) is there, once, in clear nowhere.

mod common;

use std::path::Path;

use facegate::access::{Action, AuditLog, Event, EventFilter, EventSource, Outcome};

const CHILD_ENV: &str = "FACEGATE_AUDIT_CONVERSION_CHILD_DIR";
const EVENTS: u64 = 4000;

/// The event key of the plaintext format: time then id, both big-endian.
fn key(time_ms: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(time_ms as u64).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

fn crop(id: u64) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF];
    b.extend_from_slice(format!("crop-of-event-{id}").as_bytes());
    b
}

/// An audit log as facegate wrote it before sealing: JSON events, JPEG crops, no format record.
/// Event times are recent (older face crops would be purged by the retention on open); the
/// first event's time is returned.
fn write_plaintext_log(dir: &Path) -> i64 {
    let t0 = facegate::gallery::now_ms() - 2 * 3600 * 1000 - EVENTS as i64 * 1000;
    let db = facegate::gallery::sled_db::open(dir, sled::Mode::LowSpace).unwrap();
    let events = db.open_tree("events").unwrap();
    let crops = db.open_tree("face_crops").unwrap();
    let times = db.open_tree("face_crop_times").unwrap();
    for id in 1..=EVENTS {
        let t = t0 + id as i64 * 1000;
        let e = Event {
            id,
            time_ms: t,
            action: Action::Access,
            outcome: if id % 3 == 0 {
                Outcome::Denied
            } else {
                Outcome::Granted
            },
            source: EventSource::Door,
            person: Some(format!("resident-{id}")),
            template: None,
            score: Some(0.8),
            reason: None,
            quality: None,
            face_crop: id % 50 == 0,
        };
        events
            .insert(key(t, id), serde_json::to_vec(&e).unwrap())
            .unwrap();
        if id % 50 == 0 {
            crops.insert(id.to_be_bytes(), crop(id)).unwrap();
            times.insert(key(t, id), &[][..]).unwrap();
        }
    }
    db.flush().unwrap();
    t0
}

/// The child's side: runs only when the parent re-executes this test binary with CHILD_ENV.
#[test]
fn conversion_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let key = common::device_key(dir.parent().unwrap());
    println!("start");
    AuditLog::open(&dir, usize::MAX, &key).expect("open");
    println!("done");
}

#[test]
fn a_conversion_killed_at_any_point_loses_nothing() {
    let root = common::tmpdir("audit-conversion-kill");
    let dir = root.join("audit");
    let t0 = write_plaintext_log(&dir);
    common::device_key(&root);
    // Kill points spread over the conversion (its length depends on the machine's load).
    let finished_in_child = common::kill_at_points(
        "conversion_child",
        CHILD_ENV,
        &dir,
        &root.join("audit.migrating"),
        &[20, 100, 300, 700, 1500, 3000, 6000],
        || {
            assert!(
                dir.exists() || root.join("audit.migrating").exists(),
                "neither the original nor the copy is there"
            );
        },
    );
    let key = common::device_key(&root);
    let log = AuditLog::open(&dir, usize::MAX, &key).expect("open after the kills");
    assert_eq!(log.len(), EVENTS as usize);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = log
            .query(&EventFilter::default(), cursor.as_deref(), 1000)
            .unwrap();
        for e in &page.events {
            assert_eq!(e.time_ms, t0 + e.id as i64 * 1000, "event {}", e.id);
            assert_eq!(e.person, Some(format!("resident-{}", e.id)));
        }
        seen.extend(page.events.iter().map(|e| e.id));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=EVENTS).collect::<Vec<_>>(), "every event, once");
    for id in [50u64, 2000, EVENTS] {
        assert_eq!(log.face_crop(id).unwrap(), Some(crop(id)), "crop {id}");
    }
    assert_eq!(log.verify().unwrap().intact, EVENTS as usize);
    drop(log);
    assert!(!root.join("audit.migrating").exists());
    assert!(!root.join("audit.plaintext").exists());
    // Nothing personal left in clear in any file of the log.
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let b = std::fs::read(&p).unwrap();
            assert!(
                !b.windows(9).any(|w| w == b"resident-"),
                "a person id in clear in {}",
                p.display()
            );
        }
    }
    eprintln!("conversion finished inside a killed child: {finished_in_child}");
    let _ = std::fs::remove_dir_all(&root);
}
