//! The audit log: every access decision, enrollment and deletion, in its own sled database.
//!
//! Events are keyed by `(time_ms, id)` (both big-endian), so a time range is one range scan.
//! The log holds at most `max_events`: appending past that drops the oldest appended. Event
//! records name person ids only, never images or embeddings.
//!
//! At rest ([`seal`]): the personal fields of each event (person, template,
//! score, reason, face quality) are sealed under the log's key, each face crop under its own
//! key (destroyed with the crop), and every event is chained by an HMAC to the one appended
//! before it; [`AuditLog::verify`] names the first broken link. A log written before sealing
//! is converted on the first open with a device key ([`migrate`]).
//!
//! Optionally (`access.save_face_crops`, off by default) a door decision keeps the aligned face
//! crop of its deciding frame as a JPEG: in the `face_crops` tree keyed by event id, written in
//! the same transaction as the event, with an index by `(time_ms, id)` (`face_crop_times`) for
//! the retention. A crop is deleted when it is older than [`CropRetention::max_age_ms`], when
//! more than [`CropRetention::max_count`] are kept (oldest first), and with its event when the
//! event log trims.

use serde::{Deserialize, Serialize};

mod log;
pub mod migrate;
mod read;
pub mod seal;
#[cfg(test)]
mod tests;

pub use log::AuditLog;
pub use seal::{BrokenLink, Verification};

/// Format of a sealed, chained log (the `meta` tree's "format").
pub const FORMAT: &str = "facegate-audit-2";
const META_FORMAT: &str = "format";
const META_CHAIN: &str = "chain";
/// File name of the log's key slots, inside its folder.
pub const SLOTS_FILE: &str = "keyslots";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log at {path}: {source}")]
    Storage { path: String, source: sled::Error },
    #[error("audit log record is damaged: {0}")]
    Corrupt(String),
    #[error("invalid audit query: {0}")]
    Invalid(String),
    #[error("audit log tampered with: {0}")]
    Tampered(String),
    /// Not marked as the error's source: the message carries it already (a source would be
    /// printed twice in an error chain).
    #[error("audit log keys: {0}")]
    Crypto(crate::crypto::CryptoError),
}

impl From<crate::crypto::CryptoError> for AuditError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        AuditError::Crypto(e)
    }
}

pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// 1:1 check of a claimed identity.
    Verify,
    /// 1:N search.
    Identify,
    /// A face photo enrolled (or refused).
    Enroll,
    DeletePerson,
    DeleteFace,
    /// A remote unlock.
    Unlock,
    /// A face at the door.
    Access,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Recognised and admitted.
    Granted,
    /// Recognised (or claimed) but refused: no match on verify, disabled, expired, offline policy.
    Denied,
    /// Nobody in the gallery matched.
    Unknown,
    /// No usable face in the image.
    NoFace,
    Enrolled,
    /// An enrollment photo refused (quality, duplicate).
    Rejected,
    Deleted,
    Unlocked,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Granted,
        Outcome::Denied,
        Outcome::Unknown,
        Outcome::NoFace,
        Outcome::Enrolled,
        Outcome::Rejected,
        Outcome::Deleted,
        Outcome::Unlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Denied => "denied",
            Outcome::Unknown => "unknown",
            Outcome::NoFace => "no_face",
            Outcome::Enrolled => "enrolled",
            Outcome::Rejected => "rejected",
            Outcome::Deleted => "deleted",
            Outcome::Unlocked => "unlocked",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Who produced the event. Stored by name (`"api"`, `"door"`, `"cli"`): a new source adds a
/// name, and the events already written read as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Api,
    Door,
    /// The command line (`facegate gallery add|remove`, `facegate enroll`).
    Cli,
}

impl EventSource {
    pub const ALL: [EventSource; 3] = [EventSource::Api, EventSource::Door, EventSource::Cli];

    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Api => "api",
            EventSource::Door => "door",
            EventSource::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<EventSource> {
        EventSource::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Face quality figures worth keeping with a decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaceQuality {
    pub detector_score: f32,
    pub eye_distance_px: f32,
    pub yaw_deg: f32,
    pub roll_deg: f32,
    pub sharpness: f32,
}

impl From<&crate::vision::Quality> for FaceQuality {
    fn from(q: &crate::vision::Quality) -> Self {
        FaceQuality {
            detector_score: q.detector_score,
            eye_distance_px: q.eye_distance_px,
            yaw_deg: q.yaw_deg,
            roll_deg: q.roll_deg,
            sharpness: q.sharpness,
        }
    }
}

/// An event as the caller describes it; the log adds id and time. Serialised (for the event
/// sinks) without its face crop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    pub action: Action,
    pub outcome: Outcome,
    pub source: EventSource,
    pub person: Option<String>,
    pub template: Option<u64>,
    pub score: Option<f32>,
    pub reason: Option<String>,
    pub quality: Option<FaceQuality>,
    /// The aligned face crop as JPEG, stored with the event (door decisions, when enabled).
    #[serde(skip)]
    pub face_jpeg: Option<Vec<u8>>,
}

impl NewEvent {
    pub fn new(action: Action, outcome: Outcome, source: EventSource) -> NewEvent {
        NewEvent {
            action,
            outcome,
            source,
            person: None,
            template: None,
            score: None,
            reason: None,
            quality: None,
            face_jpeg: None,
        }
    }

    pub fn person(mut self, id: impl Into<String>) -> NewEvent {
        self.person = Some(id.into());
        self
    }

    pub fn template(mut self, id: u64) -> NewEvent {
        self.template = Some(id);
        self
    }

    pub fn score(mut self, s: f32) -> NewEvent {
        self.score = Some(s);
        self
    }

    pub fn reason(mut self, r: impl Into<String>) -> NewEvent {
        self.reason = Some(r.into());
        self
    }

    pub fn quality(mut self, q: FaceQuality) -> NewEvent {
        self.quality = Some(q);
        self
    }

    pub fn face_jpeg(mut self, jpeg: Vec<u8>) -> NewEvent {
        self.face_jpeg = Some(jpeg);
        self
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Unique and increasing within one log.
    pub id: u64,
    /// Unix ms.
    pub time_ms: i64,
    pub action: Action,
    pub outcome: Outcome,
    pub source: EventSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<FaceQuality>,
    /// A face crop is stored with this event (filled in when the event is read; absent when
    /// false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub face_crop: bool,
}

impl Event {
    /// The pagination cursor that continues after this event (towards older ones).
    pub fn cursor(&self) -> String {
        format!("{}-{}", self.time_ms, self.id)
    }
}

/// Which events a query returns. Every field narrows; `None` is "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Inclusive, Unix ms.
    pub from_ms: Option<i64>,
    /// Exclusive, Unix ms.
    pub until_ms: Option<i64>,
    pub person: Option<String>,
    pub outcome: Option<Outcome>,
    pub action: Option<Action>,
    pub source: Option<EventSource>,
}

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        self.person
            .as_ref()
            .is_none_or(|p| e.person.as_ref() == Some(p))
            && self.outcome.is_none_or(|o| e.outcome == o)
            && self.action.is_none_or(|a| e.action == a)
            && self.source.is_none_or(|s| e.source == s)
    }
}

/// One page of a query, newest first; `next` continues it (absent on the last page).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub next: Option<String>,
}

/// Largest page a query returns.
pub const MAX_PAGE: usize = 1000;

const DAY_MS: i64 = 86_400_000;

/// How long face crops are kept, and how many at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRetention {
    /// Crops older than this (by their event's time) are deleted.
    pub max_age_ms: i64,
    /// Beyond this many, the oldest crops are deleted.
    pub max_count: usize,
}

impl CropRetention {
    pub fn days(days: u32, max_count: usize) -> CropRetention {
        CropRetention {
            max_age_ms: i64::from(days) * DAY_MS,
            max_count,
        }
    }
}

impl Default for CropRetention {
    /// The configuration's defaults: 30 days, 10,000 crops.
    fn default() -> Self {
        CropRetention::days(30, 10_000)
    }
}
