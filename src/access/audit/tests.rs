use std::path::{Path, PathBuf};

use super::log::key as event_key;
use super::*;
use crate::crypto::DeviceKey;

fn key() -> DeviceKey {
    static KEY: std::sync::OnceLock<DeviceKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| DeviceKey::generate().unwrap()).clone()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "facegate-audit-{name}-{}-{}",
        std::process::id(),
        crate::gallery::now_ms()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Open the log again after dropping it in this process (the open waits out the lock
/// sled's background flusher may hold for a moment after the drop).
fn reopen(dir: &Path, max_events: usize) -> AuditLog {
    AuditLog::open(dir, max_events, &key()).unwrap()
}

fn ev(outcome: Outcome, person: &str) -> NewEvent {
    NewEvent::new(Action::Identify, outcome, EventSource::Api).person(person)
}

#[test]
fn filters_paginates_newest_first_and_keeps_the_bound() {
    let dir = tmp("basic");
    let log = AuditLog::open(&dir, 5, &key()).unwrap();
    for (i, (o, p)) in [
        (Outcome::Granted, "a"),
        (Outcome::Unknown, "b"),
        (Outcome::Granted, "a"),
        (Outcome::Denied, "b"),
        (Outcome::Granted, "a"),
        (Outcome::Granted, "c"),
        (Outcome::Granted, "a"),
    ]
    .into_iter()
    .enumerate()
    {
        log.append_at(ev(o, p), 1000 + i as i64).unwrap();
    }
    // Bound: the two oldest were dropped.
    assert_eq!(log.len(), 5);
    let all = log.query(&EventFilter::default(), None, 100).unwrap();
    let times: Vec<i64> = all.events.iter().map(|e| e.time_ms).collect();
    assert_eq!(times, [1006, 1005, 1004, 1003, 1002]);
    assert_eq!(all.next, None);

    let granted_a = EventFilter {
        person: Some("a".into()),
        outcome: Some(Outcome::Granted),
        ..EventFilter::default()
    };
    let p1 = log.query(&granted_a, None, 2).unwrap();
    assert_eq!(p1.events.len(), 2);
    assert_eq!(p1.events[0].time_ms, 1006);
    let p2 = log.query(&granted_a, p1.next.as_deref(), 2).unwrap();
    assert_eq!(p2.events.len(), 1);
    assert_eq!(p2.events[0].time_ms, 1002);
    assert_eq!(p2.next, None);

    let range = EventFilter {
        from_ms: Some(1003),
        until_ms: Some(1005),
        ..EventFilter::default()
    };
    let r = log.query(&range, None, 10).unwrap();
    let times: Vec<i64> = r.events.iter().map(|e| e.time_ms).collect();
    assert_eq!(times, [1004, 1003]);
    assert!(log.query(&range, Some("garbage"), 10).is_err());

    // Reopened: the count and the events survive.
    drop(log);
    let log = reopen(&dir, 3);
    assert_eq!(log.len(), 3, "a smaller bound trims on open");
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outcome_names_round_trip() {
    for o in Outcome::ALL {
        assert_eq!(Outcome::parse(o.as_str()), Some(o));
        assert_eq!(
            serde_json::to_value(o).unwrap(),
            serde_json::Value::String(o.as_str().into())
        );
    }
    assert_eq!(Outcome::parse("nope"), None);
}

fn door(outcome: Outcome, person: &str) -> NewEvent {
    NewEvent::new(Action::Access, outcome, EventSource::Door).person(person)
}

/// A few distinct bytes standing for a JPEG (the log stores whatever it is given).
fn jpeg(tag: u8) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0, tag];
    v.extend(std::iter::repeat_n(tag, 2000));
    v
}

#[test]
fn face_crops_are_stored_with_their_event_and_read_back() {
    let dir = tmp("crops-basic");
    let log = AuditLog::open(&dir, 100, &key()).unwrap();
    let now = crate::gallery::now_ms();
    let with = log
        .append_at(door(Outcome::Granted, "a").face_jpeg(jpeg(1)), now - 1000)
        .unwrap();
    let without = log
        .append_at(door(Outcome::Unknown, "b"), now - 500)
        .unwrap();
    assert!(with.face_crop && !without.face_crop);
    assert_eq!(log.face_crop(with.id).unwrap(), Some(jpeg(1)));
    assert_eq!(log.face_crop(without.id).unwrap(), None);
    assert_eq!(log.face_crop(999_999).unwrap(), None);
    assert_eq!(log.crop_count(), 1);
    // Queries say which events have a crop; the JSON has `face_crop` only when true.
    let page = log.query(&EventFilter::default(), None, 10).unwrap();
    let flags: Vec<(u64, bool)> = page.events.iter().map(|e| (e.id, e.face_crop)).collect();
    assert_eq!(flags, [(without.id, false), (with.id, true)]);
    let json = serde_json::to_value(&page.events[1]).unwrap();
    assert_eq!(json["face_crop"], true);
    assert!(
        serde_json::to_value(&page.events[0])
            .unwrap()
            .get("face_crop")
            .is_none()
    );
    // Survives a reopen.
    drop(log);
    let log = reopen(&dir, 100);
    assert_eq!(log.crop_count(), 1);
    assert_eq!(log.face_crop(with.id).unwrap(), Some(jpeg(1)));
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn face_crops_older_than_the_retention_are_deleted_and_gone() {
    let dir = tmp("crops-age");
    let log = AuditLog::open(&dir, 100, &key())
        .unwrap()
        .with_crop_retention(CropRetention::days(30, 100))
        .unwrap();
    let now = crate::gallery::now_ms();
    // Already past its retention when written: the event is kept, the crop is not.
    let stale = log
        .append_at(
            door(Outcome::Granted, "a").face_jpeg(jpeg(1)),
            now - 31 * DAY_MS,
        )
        .unwrap();
    assert!(!stale.face_crop);
    assert_eq!(log.face_crop(stale.id).unwrap(), None);
    let old = log
        .append_at(
            door(Outcome::Granted, "a").face_jpeg(jpeg(2)),
            now - 20 * DAY_MS,
        )
        .unwrap();
    let new = log
        .append_at(door(Outcome::Denied, "b").face_jpeg(jpeg(3)), now - DAY_MS)
        .unwrap();
    assert_eq!(log.crop_count(), 2);
    // Eleven days later the first is 31 days old: deleted; the second stays.
    assert_eq!(log.purge_crops_at(now + 11 * DAY_MS).unwrap(), 1);
    assert_eq!(log.face_crop(old.id).unwrap(), None);
    assert_eq!(log.face_crop(new.id).unwrap(), Some(jpeg(3)));
    assert_eq!(log.crop_count(), 1);
    // The events themselves stay, without crops.
    assert_eq!(log.len(), 3);
    let page = log.query(&EventFilter::default(), None, 10).unwrap();
    assert_eq!(page.events.iter().filter(|e| e.face_crop).count(), 1);
    // Gone for good: not back after a reopen, and a shorter retention on open purges.
    drop(log);
    let log = reopen(&dir, 100);
    assert_eq!(log.face_crop(old.id).unwrap(), None);
    assert_eq!(log.crop_count(), 1);
    let log = log
        .with_crop_retention(CropRetention {
            max_age_ms: 1000,
            max_count: 100,
        })
        .unwrap();
    assert_eq!(log.face_crop(new.id).unwrap(), None);
    assert_eq!(log.crop_count(), 0);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn face_crops_beyond_the_maximum_go_oldest_first() {
    let dir = tmp("crops-max");
    let log = AuditLog::open(&dir, 100, &key())
        .unwrap()
        .with_crop_retention(CropRetention::days(30, 3))
        .unwrap();
    let now = crate::gallery::now_ms();
    let ids: Vec<u64> = (0..5u8)
        .map(|i| {
            log.append_at(
                door(Outcome::Granted, "a").face_jpeg(jpeg(i)),
                now - 10_000 + i64::from(i),
            )
            .unwrap()
            .id
        })
        .collect();
    assert_eq!(log.crop_count(), 3);
    for (i, id) in ids.iter().enumerate() {
        let expected = (i >= 2).then(|| jpeg(i as u8));
        assert_eq!(log.face_crop(*id).unwrap(), expected, "crop {i}");
    }
    assert_eq!(log.len(), 5);
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_face_crop_is_deleted_with_its_event_when_the_log_trims() {
    let dir = tmp("crops-trim");
    let log = AuditLog::open(&dir, 3, &key()).unwrap();
    let now = crate::gallery::now_ms();
    let ids: Vec<u64> = (0..5u8)
        .map(|i| {
            log.append_at(
                door(Outcome::Unknown, "x").face_jpeg(jpeg(i)),
                now - 10_000 + i64::from(i),
            )
            .unwrap()
            .id
        })
        .collect();
    assert_eq!(log.len(), 3);
    assert_eq!(log.crop_count(), 3);
    assert_eq!(log.face_crop(ids[0]).unwrap(), None);
    assert_eq!(log.face_crop(ids[1]).unwrap(), None);
    assert_eq!(log.face_crop(ids[2]).unwrap(), Some(jpeg(2)));
    // A smaller bound on reopen trims events and their crops together.
    drop(log);
    let log = reopen(&dir, 1);
    assert_eq!((log.len(), log.crop_count()), (1, 1));
    assert_eq!(log.face_crop(ids[3]).unwrap(), None);
    assert_eq!(log.face_crop(ids[4]).unwrap(), Some(jpeg(4)));
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_chain_verifies_through_trimming_and_reopening_and_names_an_edit() {
    let dir = tmp("chain");
    let log = AuditLog::open(&dir, 5, &key()).unwrap();
    for i in 0..12 {
        log.append_at(ev(Outcome::Granted, &format!("p{i}")), 1000 + i)
            .unwrap();
    }
    let v = log.verify().unwrap();
    assert_eq!((v.intact, v.broken.clone()), (5, None), "{v:?}");
    drop(log);
    let log = reopen(&dir, 5);
    // Out of time order: the chain follows appends.
    log.append_at(ev(Outcome::Denied, "late"), 500).unwrap();
    let v = log.verify().unwrap();
    assert_eq!((v.intact, v.broken.clone()), (5, None), "{v:?}");
    // The oldest appended went, not the oldest in time.
    let all = log.query(&EventFilter::default(), None, 10).unwrap().events;
    assert!(all.iter().any(|e| e.person.as_deref() == Some("late")));
    // An edit of the stored record (a flipped byte in its public part) is named.
    let (k, rec) = log.events.iter().nth(2).unwrap().unwrap();
    let mut bad = rec.to_vec();
    bad[10] ^= 0x01;
    log.events.insert(&k, bad).unwrap();
    let v = log.verify().unwrap();
    let b = v.broken.expect("broken");
    assert!(b.reason.contains("altered"), "{b:?}");
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_plaintext_log_is_converted_with_its_ids_times_and_crops() {
    let dir = tmp("convert");
    let now = crate::gallery::now_ms();
    {
        // The format before sealing: JSON events, JPEG crops, no format record.
        let db = sled::open(&dir).unwrap();
        let events = db.open_tree("events").unwrap();
        let crops = db.open_tree("face_crops").unwrap();
        let times = db.open_tree("face_crop_times").unwrap();
        for (id, t) in [(7u64, now - 3000), (9, now - 4000), (12, now - 1000)] {
            let e = Event {
                id,
                time_ms: t,
                action: Action::Access,
                outcome: Outcome::Granted,
                source: EventSource::Door,
                person: Some(format!("person-{id}")),
                template: None,
                score: Some(0.9),
                reason: None,
                quality: None,
                face_crop: false,
            };
            events
                .insert(event_key(t, id), serde_json::to_vec(&e).unwrap())
                .unwrap();
        }
        crops.insert(9u64.to_be_bytes(), jpeg(9)).unwrap();
        times.insert(event_key(now - 4000, 9), &[][..]).unwrap();
        db.flush().unwrap();
    }
    let log = reopen(&dir, 100);
    let page = log.query(&EventFilter::default(), None, 10).unwrap();
    let ids: Vec<u64> = page.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, [12, 7, 9]);
    assert_eq!(page.events[1].person.as_deref(), Some("person-7"));
    assert_eq!(log.face_crop(9).unwrap(), Some(jpeg(9)));
    assert_eq!(log.verify().unwrap().intact, 3);
    // New events continue after the highest id.
    assert_eq!(log.append(ev(Outcome::Unknown, "x")).unwrap().id, 13);
    drop(log);
    let mut found = false;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let b = std::fs::read(&p).unwrap();
            found |= b.windows(8).any(|w| w == b"person-7");
        }
    }
    assert!(!found, "a person id in clear after the conversion");
    assert!(
        !dir.with_file_name(format!(
            "{}.plaintext",
            dir.file_name().unwrap().to_string_lossy()
        ))
        .exists()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
