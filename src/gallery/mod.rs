//! The gallery: who is enrolled, and 1:N / 1:1 search over their face templates.
//!
//! - [`cache`]: the device's own copy in `sled`, searched in memory ([`matrix`]); works offline.
//! - [`milvus`]: the central store shared by every door (Milvus, through milvus-sdk-rust).
//! - [`tiered`]: the two together: cache first, Milvus on a miss (with a timeout and a circuit
//!   breaker), write-through with a durable outbox, and a background sync.
//!
//! Everything above this module (the door loop, the HTTP API, the CLI) uses the [`Gallery`]
//! trait. Scores everywhere are cosine similarities of L2-normalised embeddings, in `[-1, 1]`;
//! one threshold means the same thing locally and in Milvus.

pub mod cache;
pub mod config;
pub mod enroll;
pub mod limits;
pub mod matrix;
pub mod migrate;
pub mod milvus;
pub mod names;
pub mod outbox;
pub mod record;
pub mod remote;
mod removal;
pub mod sealed;
pub mod sled_db;
mod standalone;
pub mod synth;
pub mod tiered;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::Serialize;

pub use cache::Cache;
pub use config::{GalleryConfig, MilvusConfig, OfflinePolicy};
pub use record::{ModelTag, NewPerson, Person, PersonPatch, Template};
pub use tiered::Tiered;

#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("gallery storage at {path}: {source}")]
    Storage { path: String, source: sled::Error },
    #[error(
        "the gallery at {path} was made with embedder {found} ({found_dim}-d); this facegate runs {expected} ({expected_dim}-d). Templates of different models cannot be compared: re-enroll into a new gallery directory, or configure the embedder the gallery was made with"
    )]
    ModelMismatch {
        path: String,
        found: String,
        found_dim: usize,
        expected: String,
        expected_dim: usize,
    },
    #[error(
        "the gallery at {path} is in use by another program ({holders}); a running facegate \
         (the door, or facegate serve) holds it. Stop that program first (systemctl stop \
         facegate) or use its HTTP API"
    )]
    InUse { path: String, holders: String },
    #[error("gallery data is damaged: {0}")]
    Corrupt(String),
    #[error("no person with id {0:?}")]
    UnknownPerson(String),
    #[error("no face template with id {0}")]
    UnknownTemplate(u64),
    #[error("a person with id {0:?} already exists")]
    PersonExists(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("embedding has {got} values, the gallery's model has {expected}")]
    Dimension { got: usize, expected: usize },
    #[error("central gallery (Milvus): {0}")]
    Remote(String),
    #[error("central gallery (Milvus) is unavailable: {0}")]
    RemoteUnavailable(String),
    /// Not marked as the error's source: the message carries it already (a source would be
    /// printed twice in an error chain).
    #[error("gallery keys: {0}")]
    Crypto(crate::crypto::CryptoError),
}

impl From<crate::crypto::CryptoError> for GalleryError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        GalleryError::Crypto(e)
    }
}

pub type Result<T, E = GalleryError> = std::result::Result<T, E>;

/// One candidate of an identification.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Match {
    pub person: String,
    pub template: u64,
    /// Cosine similarity.
    pub score: f32,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cache,
    Remote,
}

/// The central store's state as the door sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum RemoteState {
    /// No central store configured (a standalone door).
    None,
    Online,
    /// Calls fail or the circuit breaker is open; `since_ms` is the last successful sync
    /// (Unix ms, 0 = never).
    Offline {
        since_ms: i64,
        reason: String,
    },
}

/// Result of a 1:N search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identification {
    /// Best candidates, one per person, best first.
    pub candidates: Vec<Match>,
    pub source: Source,
    pub remote: RemoteState,
    /// Set when the door has been cut off from the central store longer than `max_offline`
    /// and its policy is to admit nobody: the candidates are still listed, but the caller must
    /// refuse, giving this reason.
    pub refuse: Option<String>,
}

/// What a deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Removed {
    pub persons: usize,
    pub templates: usize,
    /// Pending outbox entries for the removed data that were dropped before reaching Milvus.
    pub outbox_entries: usize,
    /// `true` if the central store confirmed; `false` if the deletion is queued in the outbox.
    pub remote_confirmed: bool,
}

/// Result of a write: ids created, and whether Milvus has it yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Written {
    pub templates: Vec<u64>,
    /// `true` if written through to Milvus; `false` if queued in the outbox (or no Milvus).
    pub remote_confirmed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncReport {
    pub persons_updated: usize,
    pub persons_removed: usize,
    pub templates_added: usize,
    pub templates_removed: usize,
    pub outbox_replayed: usize,
    pub watermark_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub model: ModelTag,
    pub persons: usize,
    pub templates: usize,
    pub outbox_depth: usize,
    pub bytes_per_template: usize,
    pub remote: RemoteState,
    /// Unix ms of the last successful sync with the central store (0 = never).
    pub last_sync_ms: i64,
    /// Rows in the central store, when it answered.
    pub remote_templates: Option<u64>,
}

/// The gallery as the door loop, the API and the CLI see it.
#[async_trait]
pub trait Gallery: Send + Sync {
    fn model(&self) -> &ModelTag;
    async fn create_person(&self, new: NewPerson) -> Result<Person>;
    async fn update_person(&self, id: &str, patch: PersonPatch) -> Result<Person>;
    async fn person(&self, id: &str) -> Result<Option<Person>>;
    /// Persons ordered by id, starting after `after`, at most `limit`.
    async fn persons(&self, after: Option<&str>, limit: usize) -> Result<Vec<Person>>;
    /// Ids of the person's templates.
    async fn templates_of(&self, id: &str) -> Result<Vec<u64>>;
    async fn delete_person(&self, id: &str) -> Result<Removed>;
    /// Store new templates of an existing person.
    async fn add_templates(&self, person: &str, embeddings: Vec<Vec<f32>>) -> Result<Written>;
    async fn delete_template(&self, id: u64) -> Result<Removed>;
    /// 1:N: the best `k` persons.
    async fn identify(&self, probe: &[f32], k: usize) -> Result<Identification>;
    /// 1:1: the person's best template score, `None` if the person has no templates.
    async fn verify(&self, person: &str, probe: &[f32]) -> Result<Option<Match>>;
    /// Replay the outbox and pull changes from the central store.
    async fn sync(&self) -> Result<SyncReport>;
    async fn stats(&self) -> Result<Stats>;
    /// Whether the central store answered the last time it was asked: `None` when there is
    /// none (a standalone door) or it has not been asked yet. Cheap and non-blocking: the door
    /// loop calls it for every frame to choose between the idle and offline screens.
    fn online(&self) -> Option<bool> {
        None
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A new template id: 63 random bits (Milvus primary keys are signed), never 0.
/// Random rather than sequential so that doors enrolling offline never collide.
pub fn new_template_id() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| GalleryError::Invalid(format!("no randomness: {e}")))?;
    Ok((u64::from_le_bytes(b) >> 1).max(1))
}

/// A new person id: 16 hex digits of randomness.
pub fn new_person_id() -> Result<String> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| GalleryError::Invalid(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Person ids: the documented character set of [`limits`].
pub fn check_person_id(id: &str) -> Result<()> {
    limits::check_person_id(id)
}

/// Check an embedding's size and normalise it (templates and probes are compared by dot product).
pub fn normalised(v: &[f32], dim: usize) -> Result<Vec<f32>> {
    if v.len() != dim {
        return Err(GalleryError::Dimension {
            got: v.len(),
            expected: dim,
        });
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !(norm.is_finite() && norm > 1e-12) {
        return Err(GalleryError::Invalid(
            "embedding is zero or not finite".into(),
        ));
    }
    Ok(v.iter().map(|x| x / norm).collect())
}

/// A gallery opened from the configuration.
pub struct Opened {
    pub gallery: Arc<dyn Gallery>,
    /// The device key the gallery was opened with (the audit log is opened with it too).
    pub device_key: crate::crypto::DeviceKey,
    pub cache: Arc<Cache>,
    /// Set when a central store is configured (its sync task is the caller's to spawn).
    pub tiered: Option<Arc<Tiered>>,
}

/// Open the configured gallery: the cache alone, or cache + Milvus when `milvus.url` is set.
/// `accept` is the recognition threshold (a cache hit at or above it is not checked remotely).
pub fn open(
    gallery: &GalleryConfig,
    milvus: &MilvusConfig,
    model: &ModelTag,
    accept: f32,
) -> Result<Opened> {
    let path = gallery.path();
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        crate::crypto::fsmode::create_dir_all(parent)?;
    }
    let device_key = first_start_key(gallery, &path)?;
    let cache = Arc::new(Cache::open(&path, model, &device_key)?);
    if milvus.enabled() {
        let remote = Arc::new(milvus::MilvusStore::new(milvus, model));
        let tiered = Arc::new(Tiered::new(Arc::clone(&cache), remote, milvus, accept));
        Ok(Opened {
            gallery: Arc::clone(&tiered) as Arc<dyn Gallery>,
            device_key,
            cache,
            tiered: Some(tiered),
        })
    } else {
        Ok(Opened {
            gallery: Arc::clone(&cache) as Arc<dyn Gallery>,
            device_key,
            cache,
            tiered: None,
        })
    }
}

/// The device key for opening the gallery at `path`. On a first start (no gallery yet, so
/// nothing a lost key could have sealed) a missing key file is created, with a warning to keep
/// a copy; with a gallery there, a missing key is an error.
fn first_start_key(
    gallery: &GalleryConfig,
    path: &std::path::Path,
) -> Result<crate::crypto::DeviceKey> {
    use crate::crypto::{CryptoError, DeviceKey, KeySource};
    match load_device_key(gallery) {
        Err(GalleryError::Crypto(CryptoError::NoKey(_)))
            if !path.join("db").exists() && !path.join("conf").exists() =>
        {
            let source = gallery.key_source();
            let KeySource::File(file) = &source else {
                return Err(GalleryError::Crypto(CryptoError::NoKey(format!(
                    "{source} does not exist"
                ))));
            };
            let key = DeviceKey::create(file)?;
            tracing::warn!(
                key = %file.display(),
                "no device key and no gallery yet: a new device key was created; keep a copy \
                 of it apart from this device (without it the gallery cannot be read)"
            );
            Ok(key)
        }
        other => other,
    }
}

/// The device key as the configuration says ([`crate::crypto::KeySource::resolve`]).
pub fn load_device_key(gallery: &GalleryConfig) -> Result<crate::crypto::DeviceKey> {
    Ok(crate::crypto::DeviceKey::load(&gallery.key_source())?)
}
