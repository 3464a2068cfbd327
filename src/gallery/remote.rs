//! The central store as the tiered gallery sees it ([`RemoteStore`], implemented for Milvus in
//! [`super::milvus`]), and the circuit breaker that keeps a dead or slow store from stalling
//! a door.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::record::{Person, Template};
use super::{GalleryError, Match, Result};

/// A person row as changed in the central store.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonChange {
    pub id: String,
    pub deleted: bool,
    /// `None` for a tombstone.
    pub person: Option<Person>,
    pub updated_ms: i64,
}

/// A template row as changed in the central store.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateChange {
    pub id: u64,
    pub person: String,
    pub deleted: bool,
    /// `None` for a tombstone (its vector is gone).
    pub embedding: Option<Vec<f32>>,
    pub updated_ms: i64,
}

/// Rows changed in a time window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub persons: Vec<PersonChange>,
    pub templates: Vec<TemplateChange>,
}

#[async_trait]
pub trait RemoteStore: Send + Sync {
    /// Where it is, for messages ("milvus at http://…, collection …").
    fn describe(&self) -> String;
    /// Connected and set up. A door does not start a connection on its decision path (that
    /// can take seconds); the sync task connects.
    fn is_ready(&self) -> bool;
    /// Connect and set up now (idempotent).
    async fn connect(&self) -> Result<()>;
    async fn health(&self) -> Result<()>;
    async fn upsert_person(&self, person: &Person) -> Result<()>;
    /// Tombstone a person and their templates (the listed ones and any other the store has).
    async fn delete_person(&self, id: &str, templates: &[u64], at_ms: i64) -> Result<()>;
    async fn upsert_templates(&self, templates: &[Template]) -> Result<()>;
    /// Tombstone templates: their vectors are overwritten, the rows stay for sync.
    async fn delete_templates(&self, ids: &[u64], at_ms: i64) -> Result<()>;
    /// The best `k` live templates (several may belong to one person), best first.
    async fn search(&self, probe: &[f32], k: usize) -> Result<Vec<Match>>;
    async fn person(&self, id: &str) -> Result<Option<Person>>;
    async fn person_templates(&self, person: &str) -> Result<Vec<Template>>;
    /// Rows with `since_ms < updated <= until_ms`; `None` if more than `limit` rows of either
    /// kind changed (the caller narrows the window).
    async fn changes(&self, since_ms: i64, until_ms: i64, limit: usize) -> Result<Option<Changes>>;
    /// Live templates in the store.
    async fn count_templates(&self) -> Result<u64>;
}

#[derive(Debug)]
struct BreakerState {
    consecutive: u32,
    open_until: Option<Instant>,
    last_error: String,
}

/// Circuit breaker: after `threshold` failures in a row, calls are refused at once for
/// `cooldown`; then one call is let through, and its outcome closes or re-opens the breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState {
                consecutive: 0,
                open_until: None,
                last_error: String::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(reason)` while open.
    pub fn allow(&self) -> std::result::Result<(), String> {
        let mut s = self.lock();
        match s.open_until {
            Some(t) if Instant::now() < t => Err(format!(
                "not asked for {} ms after {} failures in a row (last: {})",
                (t - Instant::now()).as_millis(),
                s.consecutive,
                s.last_error
            )),
            Some(_) => {
                // Half-open: this call is the probe; others wait out another cooldown.
                s.open_until = Some(Instant::now() + self.cooldown);
                Ok(())
            }
            None => Ok(()),
        }
    }

    pub fn success(&self) {
        let mut s = self.lock();
        s.consecutive = 0;
        s.open_until = None;
    }

    pub fn failure(&self, reason: &str) {
        let mut s = self.lock();
        s.consecutive += 1;
        s.last_error = reason.to_owned();
        if s.consecutive >= self.threshold {
            s.open_until = Some(Instant::now() + self.cooldown);
        }
    }

    pub fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }

    pub fn last_error(&self) -> String {
        self.lock().last_error.clone()
    }

    /// Run one remote call under the breaker and a timeout.
    pub async fn call<T, F>(&self, timeout: Duration, what: &str, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        self.allow()
            .map_err(|reason| GalleryError::RemoteUnavailable(format!("{what}: {reason}")))?;
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => {
                self.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                // A refused request (bad input) says nothing about the store's health.
                if matches!(
                    e,
                    GalleryError::RemoteUnavailable(_) | GalleryError::Remote(_)
                ) {
                    self.failure(&e.to_string());
                }
                Err(e)
            }
            Err(_) => {
                let reason = format!("{what}: no answer within {} ms", timeout.as_millis());
                self.failure(&reason);
                Err(GalleryError::RemoteUnavailable(reason))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_after_threshold_and_half_opens_after_cooldown() {
        let b = Breaker::new(2, Duration::from_millis(50));
        let fail = || async { Err::<(), _>(GalleryError::RemoteUnavailable("down".into())) };
        assert!(b.call(Duration::from_secs(1), "x", fail()).await.is_err());
        assert!(!b.is_open());
        assert!(b.call(Duration::from_secs(1), "x", fail()).await.is_err());
        assert!(b.is_open());
        // Open: the call is not even made.
        let mut ran = false;
        let r = b
            .call(Duration::from_secs(1), "x", async {
                ran = true;
                Ok(())
            })
            .await;
        assert!(r.is_err() && !ran);
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Half-open: one probe goes through and closes it.
        assert!(
            b.call(Duration::from_secs(1), "x", async { Ok(()) })
                .await
                .is_ok()
        );
        assert!(!b.is_open());
    }

    #[tokio::test]
    async fn a_slow_call_times_out_and_counts_as_failure() {
        let b = Breaker::new(1, Duration::from_secs(60));
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        };
        let err = b
            .call(Duration::from_millis(20), "search", slow)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no answer within 20 ms"), "{err}");
        assert!(b.is_open());
    }
}
