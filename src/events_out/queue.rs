//! The durable, bounded, sealed queue of events waiting for a destination (the broker, one
//! webhook URL): one sled tree per destination in the `events-out` database.
//!
//! Keys are the events' sequence numbers (big-endian, so the tree's order is the events'
//! order); values are the event's JSON sealed with a key derived from the device key (events
//! name people), bound to the tree and the key. At most `max` events are kept: pushing past it
//! drops the oldest, counted and logged. Delivery takes the oldest ([`Queue::peek`]) and removes
//! it once the destination has it ([`Queue::ack`]); what was not acknowledged is delivered
//! again after a restart (at least once: receivers may deduplicate by `seq`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::crypto::{DataKey, DeviceKey};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("event queue at {path}: {source}")]
    Storage { path: String, source: sled::Error },
    #[error("event queue at {path}: {source}")]
    Files {
        path: String,
        source: crate::crypto::CryptoError,
    },
    #[error("event queue: a queued event does not open (damaged, or another device key): {0}")]
    Open(String),
}

/// Folder name of the queue database, beside the audit log.
pub const DIR_NAME: &str = "events-out";

/// The queue database: one per facegate, shared by every destination.
#[derive(Clone)]
pub struct QueueDb {
    db: sled::Db,
    path: PathBuf,
    key: DataKey,
}

impl QueueDb {
    /// Open (or create, 0700) the database at `path`, sealed under `device_key`.
    pub fn open(path: &Path, device_key: &DeviceKey) -> Result<QueueDb, QueueError> {
        let files = |source| QueueError::Files {
            path: path.display().to_string(),
            source,
        };
        crate::crypto::fsmode::private_umask();
        crate::crypto::fsmode::create_dir_all(path).map_err(files)?;
        let db = crate::gallery::sled_db::open_sized(path, sled::Mode::LowSpace, 4 * 1024 * 1024)
            .map_err(|source| QueueError::Storage {
            path: path.display().to_string(),
            source,
        })?;
        crate::crypto::fsmode::restrict_tree(path).map_err(files)?;
        Ok(QueueDb {
            db,
            path: path.to_owned(),
            key: DataKey::from_bytes(device_key.derive("facegate events-out queue")),
        })
    }

    fn storage(&self, source: sled::Error) -> QueueError {
        QueueError::Storage {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The next sequence number (monotonic across restarts).
    pub fn next_seq(&self) -> Result<u64, QueueError> {
        self.db.generate_id().map_err(|e| self.storage(e))
    }

    /// The queue of destination `name`, holding at most `max` events.
    pub fn queue(&self, name: &str, max: usize) -> Result<Arc<Queue>, QueueError> {
        let tree = self
            .db
            .open_tree(format!("q:{name}"))
            .map_err(|e| self.storage(e))?;
        let len = tree.len();
        Ok(Arc::new(Queue {
            tree,
            db: self.clone(),
            name: name.to_owned(),
            max,
            len: AtomicUsize::new(len),
            dropped: AtomicU64::new(0),
        }))
    }

    /// Drop the queues of destinations no longer configured (their events are counted in a
    /// warning).
    pub fn forget_others(&self, keep: &[String]) -> Result<(), QueueError> {
        for name in self.db.tree_names() {
            let Some(dest) = name.strip_prefix(b"q:") else {
                continue;
            };
            let dest = String::from_utf8_lossy(dest).into_owned();
            if keep.contains(&dest) {
                continue;
            }
            let n = self.db.open_tree(&name).map_err(|e| self.storage(e))?.len();
            if n > 0 {
                tracing::warn!(
                    destination = %dest,
                    events = n,
                    "events out: a destination no longer configured; its queued events are dropped"
                );
            }
            self.db.drop_tree(&name).map_err(|e| self.storage(e))?;
        }
        Ok(())
    }

    /// Write what was queued to disk.
    pub fn flush(&self) -> Result<(), QueueError> {
        self.db.flush().map(|_| ()).map_err(|e| self.storage(e))
    }
}

/// One destination's queue.
pub struct Queue {
    tree: sled::Tree,
    db: QueueDb,
    name: String,
    max: usize,
    len: AtomicUsize,
    dropped: AtomicU64,
}

impl Queue {
    fn aad(&self, seq: u64) -> Vec<u8> {
        let mut aad = format!("facegate events-out q:{}:", self.name).into_bytes();
        aad.extend_from_slice(&seq.to_be_bytes());
        aad
    }

    /// Add event `seq` (its JSON); past the bound the oldest are dropped.
    pub fn push(&self, seq: u64, json: &[u8]) -> Result<(), QueueError> {
        let sealed = self
            .db
            .key
            .seal(&self.aad(seq), json)
            .map_err(|e| QueueError::Open(e.to_string()))?;
        let old = self
            .tree
            .insert(seq.to_be_bytes(), sealed)
            .map_err(|e| self.db.storage(e))?;
        if old.is_none() {
            self.len.fetch_add(1, Ordering::SeqCst);
        }
        let mut dropped = 0u64;
        while self.len.load(Ordering::SeqCst) > self.max {
            match self.tree.pop_min().map_err(|e| self.db.storage(e))? {
                Some(_) => {
                    self.len.fetch_sub(1, Ordering::SeqCst);
                    dropped += 1;
                }
                None => break,
            }
        }
        if dropped > 0 {
            let total = self.dropped.fetch_add(dropped, Ordering::SeqCst) + dropped;
            // Every drop is counted; the warning is logged at 1, 2, 4, 8... so a long outage
            // does not flood the log.
            if total.is_power_of_two() || dropped > 1 {
                tracing::warn!(
                    destination = %self.name,
                    dropped_total = total,
                    bound = self.max,
                    "events out: queue full, oldest events dropped"
                );
            }
        }
        Ok(())
    }

    /// The oldest event: its sequence number and JSON.
    pub fn peek(&self) -> Result<Option<(u64, Vec<u8>)>, QueueError> {
        let Some((k, v)) = self.tree.first().map_err(|e| self.db.storage(e))? else {
            return Ok(None);
        };
        let seq = u64::from_be_bytes(
            k.as_ref()
                .try_into()
                .map_err(|_| QueueError::Open(format!("{}: a bad key", self.name)))?,
        );
        match self.db.key.open(&self.aad(seq), &v, "queued event") {
            Ok(json) => Ok(Some((seq, json))),
            Err(e) => {
                // A record that cannot be opened would block the queue for ever: drop it, say so.
                tracing::error!(destination = %self.name, seq, error = %e, "events out: dropped");
                self.ack(seq)?;
                Err(QueueError::Open(e.to_string()))
            }
        }
    }

    /// Event `seq` was delivered: remove it (a no-op when it was already dropped).
    pub fn ack(&self, seq: u64) -> Result<(), QueueError> {
        if self
            .tree
            .remove(seq.to_be_bytes())
            .map_err(|e| self.db.storage(e))?
            .is_some()
        {
            self.len.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped because the queue was full, since it was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_ordered_sealed_and_durable() {
        let dir = std::env::temp_dir().join(format!(
            "facegate-queue-{}-{}",
            std::process::id(),
            crate::gallery::now_ms()
        ));
        let key = DeviceKey::generate().unwrap();
        {
            let db = QueueDb::open(&dir, &key).unwrap();
            let q = db.queue("mqtt", 3).unwrap();
            for i in 0..5u64 {
                let seq = db.next_seq().unwrap();
                q.push(
                    seq,
                    format!("{{\"n\":{i},\"person\":\"alice\"}}").as_bytes(),
                )
                .unwrap();
            }
            assert_eq!(q.len(), 3);
            assert_eq!(q.dropped(), 2);
            let (seq, json) = q.peek().unwrap().unwrap();
            assert_eq!(json, br#"{"n":2,"person":"alice"}"#);
            q.ack(seq).unwrap();
            q.ack(seq).unwrap();
            assert_eq!(q.len(), 2);
            db.flush().unwrap();
        }
        // Nothing in clear on disk.
        let mut clear = false;
        for f in std::fs::read_dir(&dir).unwrap().flatten() {
            if f.path().is_file() {
                let b = std::fs::read(f.path()).unwrap();
                clear |= b.windows(5).any(|w| w == b"alice");
            }
        }
        assert!(!clear, "a queued event was found in clear");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        // Reopened: what was left, in order; another key cannot read it.
        {
            let db = QueueDb::open(&dir, &key).unwrap();
            let q = db.queue("mqtt", 3).unwrap();
            assert_eq!(q.len(), 2);
            let (_, json) = q.peek().unwrap().unwrap();
            assert_eq!(json, br#"{"n":3,"person":"alice"}"#);
            db.forget_others(&["mqtt".into()]).unwrap();
            assert_eq!(db.queue("mqtt", 3).unwrap().len(), 2);
        }
        {
            let other = DeviceKey::generate().unwrap();
            let db = QueueDb::open(&dir, &other).unwrap();
            let q = db.queue("mqtt", 3).unwrap();
            assert!(q.peek().is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
