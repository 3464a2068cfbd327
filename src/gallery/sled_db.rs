//! Opening a sled database: one place for the page-cache size and for waiting out a lock
//! that is about to be released.
//!
//! sled locks a database for one process. Right after the holder stops (a `systemctl stop`
//! that just returned, or a handle dropped in this process whose background flusher has not
//! ended yet) the lock can still be held for a moment, so a conflict is retried for
//! [`LOCK_WAIT`] before it is reported; a database really held by a running facegate is
//! still refused, only a little later.

use std::path::Path;
use std::time::{Duration, Instant};

/// sled's page cache for each database facegate opens (sled's default is 1 GiB, more than a
/// small board has; the gallery's templates are searched from their own in-memory matrix).
pub const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How long a lock conflict is retried before it is reported.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Whether a sled error is the lock of another holder.
pub fn is_lock_conflict(e: &sled::Error) -> bool {
    mentions_lock_conflict(e)
}

/// Whether an error (a sled error, or one that carries its message, such as a gallery or audit
/// error) says that another process holds the database's lock. sled reports it only in its
/// message.
pub fn mentions_lock_conflict(e: &dyn std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("could not acquire lock") || text.contains("WouldBlock")
}

/// Open (or create) the database at `path` with facegate's cache size.
pub fn open(path: &Path, mode: sled::Mode) -> Result<sled::Db, sled::Error> {
    open_sized(path, mode, SLED_CACHE_BYTES)
}

/// [`open`] with another page-cache size (small queues).
pub fn open_sized(
    path: &Path,
    mode: sled::Mode,
    cache_bytes: u64,
) -> Result<sled::Db, sled::Error> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(mode)
            .open()
        {
            Err(e) if is_lock_conflict(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_in_this_process_is_waited_for_then_reported() {
        let dir = std::env::temp_dir().join(format!("facegate-sled-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let held = open(&dir, sled::Mode::LowSpace).unwrap();
        let started = Instant::now();
        let err = open(&dir, sled::Mode::LowSpace).unwrap_err();
        assert!(is_lock_conflict(&err), "{err}");
        assert!(started.elapsed() >= LOCK_WAIT, "{:?}", started.elapsed());
        // Released within the wait: the second open succeeds.
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(held);
        });
        let again = open(&dir, sled::Mode::LowSpace);
        releaser.join().unwrap();
        assert!(again.is_ok(), "{:?}", again.err());
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
