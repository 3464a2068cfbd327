//! The audit log: every access decision, enrollment and deletion, in its own sled database.
//!
//! Events are keyed by `(time_ms, id)` (both big-endian), so a time range is one range scan.
//! The log holds at most `max_events`: appending past that drops the oldest appended. Event
//! records name person ids only, never images or embeddings.
//!
//! At rest ([`super::audit_seal`]): the personal fields of each event (person, template,
//! score, reason, face quality) are sealed under the log's key, each face crop under its own
//! key (destroyed with the crop), and every event is chained by an HMAC to the one appended
//! before it; [`AuditLog::verify`] names the first broken link. A log written before sealing
//! is converted on the first open with a device key ([`super::audit_migrate`]).
//!
//! Optionally (`access.save_face_crops`, off by default) a door decision keeps the aligned face
//! crop of its deciding frame as a JPEG: in the `face_crops` tree keyed by event id, written in
//! the same transaction as the event, with an index by `(time_ms, id)` (`face_crop_times`) for
//! the retention. A crop is deleted when it is older than [`CropRetention::max_age_ms`], when
//! more than [`CropRetention::max_count`] are kept (oldest first), and with its event when the
//! event log trims.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::audit_seal::{self, ChainState, LogKeys, Private, Public};
pub use super::audit_seal::{BrokenLink, Verification};
use crate::crypto::{DeviceKey, KeySlots};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Default)]
struct Counts {
    events: usize,
    crops: usize,
    /// The chain's state as last written (authenticated).
    state: ChainState,
}

pub struct AuditLog {
    db: sled::Db,
    events: sled::Tree,
    /// Event id (big-endian) → sealed JPEG (`slot | sealed`).
    crops: sled::Tree,
    /// `(time_ms, id)` of every stored crop (the event's key) → nothing: the retention's index.
    crop_times: sled::Tree,
    /// Event id (big-endian) → the event's key: the append order the chain runs in.
    chain: sled::Tree,
    meta: sled::Tree,
    keys: LogKeys,
    slots: KeySlots,
    /// Set at open when the chain state did not authenticate ([`AuditLog::verify`] says it).
    state_damage: Option<String>,
    path: PathBuf,
    max_events: usize,
    retention: CropRetention,
    /// Stored events and crops, the chain state; the lock also orders appends with trimming.
    count: Mutex<Counts>,
}

fn tx_error(e: TransactionError<()>) -> sled::Error {
    match e {
        TransactionError::Storage(e) => e,
        TransactionError::Abort(()) => {
            sled::Error::Unsupported("audit log transaction aborted".into())
        }
    }
}

fn id_of_key(k: &[u8]) -> [u8; 8] {
    let mut id = [0u8; 8];
    if k.len() == 16 {
        id.copy_from_slice(&k[8..]);
    }
    id
}

fn key(time_ms: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(time_ms.max(0) as u64).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

type Tx = ConflictableTransactionError<()>;

impl AuditLog {
    /// Open (or create) the log at `path`, keeping at most `max_events` (at least 1), with the
    /// default crop retention (see [`AuditLog::with_crop_retention`]). Its keys are wrapped by
    /// `device`; a log written before sealing is converted first.
    pub fn open(path: &Path, max_events: usize, device: &DeviceKey) -> Result<AuditLog> {
        super::audit_migrate::prepare(path, device)?;
        AuditLog::open_sealed(path, max_events, device)
    }

    pub(crate) fn open_sealed(
        path: &Path,
        max_events: usize,
        device: &DeviceKey,
    ) -> Result<AuditLog> {
        let storage = |source| AuditError::Storage {
            path: path.display().to_string(),
            source,
        };
        crate::crypto::fsmode::private_umask();
        crate::crypto::fsmode::create_dir_all(path)?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(crate::gallery::cache::SLED_CACHE_BYTES)
            .open()
            .map_err(storage)?;
        crate::crypto::fsmode::restrict_tree(path)?;
        let events = db.open_tree("events").map_err(storage)?;
        let crops = db.open_tree("face_crops").map_err(storage)?;
        let crop_times = db.open_tree("face_crop_times").map_err(storage)?;
        let chain = db.open_tree("chain").map_err(storage)?;
        let meta = db.open_tree("meta").map_err(storage)?;
        let format = meta.get(META_FORMAT).map_err(storage)?;
        let fresh = format.is_none() && events.is_empty();
        match &format {
            Some(f) if f.as_ref() == FORMAT.as_bytes() => {}
            None if fresh => {}
            _ => {
                return Err(AuditError::Corrupt(format!(
                    "{}: not a sealed audit log ({FORMAT}); AuditLog::open converts a \
                     plaintext one",
                    path.display()
                )));
            }
        }
        let slots_path = path.join(SLOTS_FILE);
        if !fresh && !slots_path.exists() {
            return Err(AuditError::Corrupt(format!(
                "{} is missing: the log's keys are gone and its records cannot be decrypted",
                slots_path.display()
            )));
        }
        let slots = KeySlots::open(&slots_path, device)?;
        let keys = LogKeys::new(slots.store_key()?);
        if format.is_none() {
            meta.insert(META_FORMAT, FORMAT).map_err(storage)?;
            meta.insert(META_CHAIN, keys.seal_state(&ChainState::default()))
                .map_err(storage)?;
            db.flush().map_err(storage)?;
        }
        let (state, state_damage) = match meta.get(META_CHAIN).map_err(storage)? {
            Some(b) => match keys.open_state(&b) {
                Ok(s) => (s, None),
                Err(e) => (rebuilt_state(&chain, &events), Some(e.to_string())),
            },
            None => (
                rebuilt_state(&chain, &events),
                Some("the chain state is missing".into()),
            ),
        };
        if let Some(d) = &state_damage {
            tracing::error!(path = %path.display(), damage = %d, "audit log chain state does not verify; appending goes on (run facegate events --verify)");
        }
        // Crop keys of writes a crash cut short.
        let mut referenced = std::collections::BTreeSet::new();
        for kv in crops.iter() {
            let (_, v) = kv.map_err(storage)?;
            if let Some(s) = audit_seal::crop_slot(&v) {
                referenced.insert(s);
            }
        }
        slots.destroy_unreferenced(&referenced)?;
        let log = AuditLog {
            count: Mutex::new(Counts {
                events: events.len(),
                crops: crop_times.len(),
                state,
            }),
            db,
            events,
            crops,
            crop_times,
            chain,
            meta,
            keys,
            slots,
            state_damage,
            path: path.to_owned(),
            max_events: max_events.max(1),
            retention: CropRetention::default(),
        };
        log.trim()?;
        log.purge_crops()?;
        Ok(log)
    }

    /// Keep face crops as `retention` says, deleting at once those it no longer allows. It
    /// applies to the crops already stored even when no new ones are saved.
    pub fn with_crop_retention(mut self, retention: CropRetention) -> Result<AuditLog> {
        self.retention = CropRetention {
            max_age_ms: retention.max_age_ms.max(0),
            max_count: retention.max_count,
        };
        self.purge_crops()?;
        Ok(self)
    }

    pub fn crop_retention(&self) -> CropRetention {
        self.retention
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn storage(&self, source: sled::Error) -> AuditError {
        AuditError::Storage {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().events
    }

    /// Face crops stored.
    pub fn crop_count(&self) -> usize {
        self.lock().crops
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record an event now.
    pub fn append(&self, new: NewEvent) -> Result<Event> {
        self.append_at(new, crate::gallery::now_ms())
    }

    /// Record an event with a given time (Unix ms). Its face crop, if any, is written in the
    /// same transaction; a crop already older than the retention is not stored.
    pub fn append_at(&self, new: NewEvent, time_ms: i64) -> Result<Event> {
        let crop = new
            .face_jpeg
            .filter(|_| time_ms >= crate::gallery::now_ms() - self.retention.max_age_ms)
            .filter(|_| self.retention.max_count > 0);
        let mut event = Event {
            id: 0,
            time_ms,
            action: new.action,
            outcome: new.outcome,
            source: new.source,
            person: new.person,
            template: new.template,
            score: new.score,
            reason: new.reason,
            quality: new.quality,
            face_crop: false,
        };
        event.id = self.store(&event, crop.as_deref(), None)?;
        event.face_crop = crop.is_some();
        self.trim()?;
        if event.face_crop {
            self.purge_crops()?;
            event.face_crop = self.has_crop(event.id)?;
        }
        Ok(event)
    }

    /// Append `event` (with the next id, or `keep_id`: a conversion keeps the old ids) and its
    /// crop, chained to the previous event. Returns its id.
    fn store(&self, event: &Event, crop: Option<&[u8]>, keep_id: Option<u64>) -> Result<u64> {
        let mut count = self.lock();
        let id = keep_id.unwrap_or(count.state.last_id + 1);
        if id <= count.state.last_id && count.state.appended > 0 {
            return Err(AuditError::Invalid(format!(
                "event id {id} is not after the last one ({})",
                count.state.last_id
            )));
        }
        let k = key(event.time_ms, id);
        let public = Public {
            id,
            time_ms: event.time_ms,
            action: event.action,
            outcome: event.outcome,
            source: event.source,
        };
        let private = Private {
            person: event.person.clone(),
            template: event.template,
            score: event.score,
            reason: event.reason.clone(),
            quality: event.quality,
        };
        let (rec, mac) = self
            .keys
            .seal_event(&k, &public, &private, &count.state.head)?;
        let crop = match crop {
            Some(jpeg) => {
                let (slot, ckey) = self.slots.create()?;
                Some((slot, audit_seal::seal_crop(slot, &ckey, id, jpeg)?))
            }
            None => None,
        };
        let state = ChainState {
            appended: count.state.appended + 1,
            last_id: id,
            head: mac,
            ..count.state
        };
        let state_rec = self.keys.seal_state(&state);
        let written = (
            &self.events,
            &self.crops,
            &self.crop_times,
            &self.chain,
            &self.meta,
        )
            .transaction(|(events, crops, times, chain, meta)| {
                let old_event = events.insert(&k[..], rec.as_slice())?;
                chain.insert(&id.to_be_bytes()[..], &k[..])?;
                meta.insert(META_CHAIN, state_rec.as_slice())?;
                let mut old_crop = None;
                if let Some((_, sealed)) = &crop {
                    old_crop = crops.insert(&id.to_be_bytes()[..], sealed.as_slice())?;
                    times.insert(&k[..], &[][..])?;
                }
                Ok::<_, Tx>((old_event, old_crop))
            })
            .map_err(|e| self.storage(tx_error(e)));
        let (old_event, old_crop) = match written {
            Ok(w) => w,
            Err(e) => {
                if let Some((slot, _)) = crop {
                    let _ = self.slots.destroy(slot);
                }
                return Err(e);
            }
        };
        count.state = state;
        if old_event.is_none() {
            count.events += 1;
        }
        if crop.is_some() && old_crop.is_none() {
            count.crops += 1;
        }
        Ok(id)
    }

    /// Append an event of a log being converted, keeping its id and time.
    pub(crate) fn import(&self, event: &Event, crop: Option<&[u8]>) -> Result<()> {
        self.store(event, crop, Some(event.id)).map(|_| ())
    }

    /// Destroy the key of a removed crop record.
    fn shred(&self, old: Option<sled::IVec>) -> Result<bool> {
        match old {
            Some(v) => {
                if let Some(slot) = audit_seal::crop_slot(&v) {
                    self.slots.destroy(slot)?;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Drop the oldest appended events beyond `max_events`, with their crops; the chain's
    /// anchor moves to each dropped event's mac.
    fn trim(&self) -> Result<()> {
        let mut count = self.lock();
        while count.events > self.max_events {
            let Some((idk, k)) = self.chain.first().map_err(|e| self.storage(e))? else {
                count.events = self.events.len();
                break;
            };
            let rec = self.events.get(&k).map_err(|e| self.storage(e))?;
            let anchor = rec
                .as_deref()
                .and_then(audit_seal::stored_mac)
                .unwrap_or_default();
            let state = ChainState {
                trimmed: count.state.trimmed + 1,
                anchor,
                ..count.state
            };
            let state_rec = self.keys.seal_state(&state);
            let (e, c) = (
                &self.events,
                &self.crops,
                &self.crop_times,
                &self.chain,
                &self.meta,
            )
                .transaction(|(events, crops, times, chain, meta)| {
                    let e = events.remove(&k)?.is_some();
                    chain.remove(&idk)?;
                    let c = crops.remove(&idk)?;
                    times.remove(&k)?;
                    meta.insert(META_CHAIN, state_rec.as_slice())?;
                    Ok::<_, Tx>((e, c))
                })
                .map_err(|e| self.storage(tx_error(e)))?;
            count.state = state;
            if e {
                count.events -= 1;
            }
            if self.shred(c)? {
                count.crops = count.crops.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Apply the crop retention now (by the system clock): delete crops older than its age
    /// limit, then the oldest beyond its count. Returns how many were deleted.
    pub fn purge_crops(&self) -> Result<usize> {
        self.purge_crops_at(crate::gallery::now_ms())
    }

    /// [`AuditLog::purge_crops`] as if the time were `now_ms`. A deleted crop's key is
    /// destroyed: what sled keeps of it can no longer be decrypted.
    pub fn purge_crops_at(&self, now_ms: i64) -> Result<usize> {
        let mut count = self.lock();
        let mut deleted = 0;
        let cutoff = key(now_ms.saturating_sub(self.retention.max_age_ms), 0);
        loop {
            let oldest = self.crop_times.first().map_err(|e| self.storage(e))?;
            let Some((k, _)) = oldest else {
                count.crops = 0;
                break;
            };
            if k.as_ref() >= cutoff.as_slice() && count.crops <= self.retention.max_count {
                break;
            }
            let id = id_of_key(&k);
            let c = (&self.crops, &self.crop_times)
                .transaction(|(crops, times)| {
                    let c = crops.remove(&id[..])?;
                    times.remove(&k)?;
                    Ok::<_, Tx>(c)
                })
                .map_err(|e| self.storage(tx_error(e)))?;
            count.crops = count.crops.saturating_sub(1);
            if self.shred(c)? {
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                kept = count.crops,
                "face crops past their retention deleted"
            );
        }
        Ok(deleted)
    }

    fn has_crop(&self, id: u64) -> Result<bool> {
        self.crops
            .contains_key(id.to_be_bytes())
            .map_err(|e| self.storage(e))
    }

    /// The face crop (JPEG) stored with event `id`, if any.
    pub fn face_crop(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let Some(v) = self
            .crops
            .get(id.to_be_bytes())
            .map_err(|e| self.storage(e))?
        else {
            return Ok(None);
        };
        let slot = audit_seal::crop_slot(&v)
            .ok_or_else(|| AuditError::Corrupt(format!("face crop {id}: bad header")))?;
        let key = self.slots.key(slot)?;
        Ok(Some(audit_seal::open_crop(&key, id, &v)?))
    }

    fn decode(&self, rec: &[u8]) -> Result<Event> {
        let (p, s) = self.keys.open_event(rec)?;
        Ok(Event {
            id: p.id,
            time_ms: p.time_ms,
            action: p.action,
            outcome: p.outcome,
            source: p.source,
            person: s.person,
            template: s.template,
            score: s.score,
            reason: s.reason,
            quality: s.quality,
            face_crop: false,
        })
    }

    /// Events matching `filter`, newest first, at most `limit` (1..=[`MAX_PAGE`]), continuing
    /// after `cursor` (a previous page's `next`).
    pub fn query(
        &self,
        filter: &EventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EventPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let lo = key(filter.from_ms.unwrap_or(0), 0);
        let mut hi = match filter.until_ms {
            Some(t) => key(t, 0),
            None => [0xff; 16],
        };
        if let Some(c) = cursor {
            let (t, id) = c
                .split_once('-')
                .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.parse::<u64>().ok()?)))
                .ok_or_else(|| {
                    AuditError::Invalid(format!(
                        "cursor {c:?}: pass the `next` value of a previous page"
                    ))
                })?;
            hi = hi.min(key(t, id));
        }
        if lo >= hi {
            return Ok(EventPage {
                events: Vec::new(),
                next: None,
            });
        }
        let mut events = Vec::new();
        let mut more = false;
        for item in self.events.range(lo..hi).rev() {
            let (_, v) = item.map_err(|e| self.storage(e))?;
            let mut e = self.decode(&v)?;
            if !filter.matches(&e) {
                continue;
            }
            if events.len() == limit {
                more = true;
                break;
            }
            e.face_crop = self.has_crop(e.id)?;
            events.push(e);
        }
        let next = if more {
            events.last().map(Event::cursor)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    /// Check the whole chain: every event in append order against the mac of the one before
    /// it (from the anchor left by trimming), the head and the counts in the authenticated
    /// state, and no event outside the chain. Reports the first broken link.
    pub fn verify(&self) -> Result<Verification> {
        let count = self.lock();
        let broken = |event: Option<u64>, time_ms: Option<i64>, reason: String| {
            Some(BrokenLink {
                event,
                time_ms,
                reason,
            })
        };
        let mut intact = 0;
        if let Some(d) = &self.state_damage {
            return Ok(Verification {
                intact,
                broken: broken(None, None, d.clone()),
            });
        }
        let state = count.state;
        let mut prev = state.anchor;
        let mut chained = std::collections::HashSet::new();
        let mut last = None;
        for kv in self.chain.iter() {
            let (idk, k) = kv.map_err(|e| self.storage(e))?;
            let id = u64::from_be_bytes(idk.as_ref().try_into().unwrap_or_default());
            let time = (k.len() == 16)
                .then(|| u64::from_be_bytes(k[..8].try_into().unwrap_or_default()) as i64);
            if id_of_key(&k)[..] != idk[..] {
                return Ok(Verification {
                    intact,
                    broken: broken(
                        Some(id),
                        time,
                        format!("event {id}: its chain entry was altered"),
                    ),
                });
            }
            let Some(rec) = self.events.get(&k).map_err(|e| self.storage(e))? else {
                let reason = format!("event {id} was removed from the log");
                return Ok(Verification {
                    intact,
                    broken: broken(Some(id), time, reason),
                });
            };
            match self.keys.check_event(&k, &rec, &prev) {
                Some(mac) => prev = mac,
                None => {
                    let reason = if intact == 0 && state.trimmed == 0 && prev == [0; 32] {
                        format!("event {id} was altered")
                    } else {
                        format!(
                            "event {id} was altered, or the event appended before it was removed"
                        )
                    };
                    return Ok(Verification {
                        intact,
                        broken: broken(Some(id), time, reason),
                    });
                }
            }
            chained.insert(k.to_vec());
            last = Some((id, time));
            intact += 1;
        }
        if chained.len() != self.events.len() {
            for kv in self.events.iter() {
                let (k, _) = kv.map_err(|e| self.storage(e))?;
                if !chained.contains(k.as_ref()) {
                    let id = u64::from_be_bytes(id_of_key(&k));
                    let reason = format!("event {id} is not part of the chain (inserted)");
                    return Ok(Verification {
                        intact,
                        broken: broken(Some(id), None, reason),
                    });
                }
            }
        }
        if prev != state.head {
            let (id, time) = last.unzip();
            let reason = "events appended after the last intact one were removed".to_owned();
            return Ok(Verification {
                intact,
                broken: broken(id.map(|i| i + 1), time.flatten(), reason),
            });
        }
        let expected = state.appended.saturating_sub(state.trimmed);
        if intact as u64 != expected {
            let reason = format!("the log holds {intact} events; its state says {expected}");
            return Ok(Verification {
                intact,
                broken: broken(None, None, reason),
            });
        }
        Ok(Verification {
            intact,
            broken: None,
        })
    }

    pub(crate) fn meta_tree(&self) -> sled::Tree {
        self.meta.clone()
    }

    /// Write everything to disk now (sled also does it on its own every half second).
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.storage(e))
    }
}

/// A chain state from what the trees hold (when the stored one does not authenticate).
fn rebuilt_state(chain: &sled::Tree, events: &sled::Tree) -> ChainState {
    let last = chain.last().ok().flatten();
    let last_id = last
        .as_ref()
        .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes))
        .unwrap_or(0);
    let head = last
        .and_then(|(_, k)| events.get(k).ok().flatten())
        .and_then(|r| audit_seal::stored_mac(&r))
        .unwrap_or_default();
    ChainState {
        appended: chain.len() as u64,
        trimmed: 0,
        last_id,
        head,
        anchor: [0; 32],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Open the log again after dropping it in this process: sled's background flusher may
    /// hold the file lock for a moment after the drop (seen once on a loaded machine).
    fn reopen(dir: &Path, max_events: usize) -> AuditLog {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match AuditLog::open(dir, max_events, &key()) {
                Ok(log) => return log,
                Err(e)
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopen: {e}"),
            }
        }
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
                    .insert(super::key(t, id), serde_json::to_vec(&e).unwrap())
                    .unwrap();
            }
            crops.insert(9u64.to_be_bytes(), jpeg(9)).unwrap();
            times.insert(super::key(now - 4000, 9), &[][..]).unwrap();
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
}
