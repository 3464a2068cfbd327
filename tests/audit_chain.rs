//! The audit log is tamper-evident: `facegate events --verify` finds an event altered in the
//! sled file (opened raw, as anyone with file access could), an event removed, and the log
//! cut short at its end; an untouched log (trimmed by its bound) verifies.

mod common;

use std::path::Path;
use std::process::Command;

use facegate::access::{Action, AuditLog, EventSource, NewEvent, Outcome};

fn verify(config: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(["--config"])
        .arg(config)
        .args(["events", "--verify"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A log of `n` events (bound 8: the oldest are trimmed), in a fresh folder; the config.
fn log_of(name: &str, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = common::tmpdir(name);
    let config = common::gallery_config(&dir, "config.toml", &dir.join("gallery"));
    let log = AuditLog::open(&dir.join("audit"), 8, &common::device_key(&dir)).unwrap();
    for i in 0..n {
        let o = if i % 2 == 0 {
            Outcome::Granted
        } else {
            Outcome::Denied
        };
        log.append_at(
            NewEvent::new(Action::Access, o, EventSource::Door).person(format!("p{i}")),
            1_000_000 + i as i64,
        )
        .unwrap();
    }
    log.flush().unwrap();
    (dir, config)
}

/// The `(key, value)` of events and chain entries, by raw sled.
fn raw(dir: &Path) -> sled::Db {
    facegate::gallery::sled_db::open(&dir.join("audit"), sled::Mode::LowSpace).unwrap()
}

#[test]
fn an_untouched_log_verifies_and_an_edited_event_is_named() {
    let (dir, config) = log_of("chain-edit", 12);
    let (code, out) = verify(&config);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("chain intact (8 events)"), "{out}");
    // Turn a denial into a grant, in the file.
    {
        let db = raw(&dir);
        let events = db.open_tree("events").unwrap();
        let (k, v) = events
            .iter()
            .map(|kv| kv.unwrap())
            .find(|(_, v)| v.windows(8).any(|w| w == b"\"denied\""))
            .unwrap();
        let mut v = v.to_vec();
        let at = v.windows(8).position(|w| w == b"\"denied\"").unwrap();
        v[at..at + 8].copy_from_slice(b"\"grantd\"");
        events.insert(&k, v).unwrap();
        db.flush().unwrap();
    }
    let (code, out) = verify(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("BROKEN LINK") && out.contains("was altered"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_removed_event_and_a_cut_end_are_named() {
    let (dir, config) = log_of("chain-remove", 6);
    {
        // Remove the third event everywhere it is referenced.
        let db = raw(&dir);
        let events = db.open_tree("events").unwrap();
        let chain = db.open_tree("chain").unwrap();
        let (idk, k) = chain.iter().nth(2).unwrap().unwrap();
        events.remove(&k).unwrap();
        chain.remove(&idk).unwrap();
        db.flush().unwrap();
    }
    let (code, out) = verify(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("BROKEN LINK"), "{out}");
    assert!(out.contains("2 events before it intact"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);

    let (dir, config) = log_of("chain-cut", 6);
    {
        let db = raw(&dir);
        let events = db.open_tree("events").unwrap();
        let chain = db.open_tree("chain").unwrap();
        let (idk, k) = chain.last().unwrap().unwrap();
        events.remove(&k).unwrap();
        chain.remove(&idk).unwrap();
        db.flush().unwrap();
    }
    let (code, out) = verify(&config);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("removed"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
