//! The log itself: opening it (and converting a plaintext one), appending events with their
//! face crops, trimming to its bound, shredding crops.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::seal::{self as audit_seal, ChainState, LogKeys, Private, Public};
use super::*;
use crate::crypto::{DeviceKey, KeySlots};

#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) events: usize,
    pub(super) crops: usize,
    /// The chain's state as last written (authenticated).
    pub(super) state: ChainState,
}

pub struct AuditLog {
    pub(super) db: sled::Db,
    pub(super) events: sled::Tree,
    /// Event id (big-endian) → sealed JPEG (`slot | sealed`).
    pub(super) crops: sled::Tree,
    /// `(time_ms, id)` of every stored crop (the event's key) → nothing: the retention's index.
    pub(super) crop_times: sled::Tree,
    /// Event id (big-endian) → the event's key: the append order the chain runs in.
    pub(super) chain: sled::Tree,
    pub(super) meta: sled::Tree,
    pub(super) keys: LogKeys,
    pub(super) slots: KeySlots,
    /// Set at open when the chain state did not authenticate ([`AuditLog::verify`] says it).
    pub(super) state_damage: Option<String>,
    pub(super) path: PathBuf,
    pub(super) max_events: usize,
    pub(super) retention: CropRetention,
    /// Stored events and crops, the chain state; the lock also orders appends with trimming.
    pub(super) count: Mutex<Counts>,
}

pub(super) fn tx_error(e: TransactionError<()>) -> sled::Error {
    match e {
        TransactionError::Storage(e) => e,
        TransactionError::Abort(()) => {
            sled::Error::Unsupported("audit log transaction aborted".into())
        }
    }
}

pub(super) fn id_of_key(k: &[u8]) -> [u8; 8] {
    let mut id = [0u8; 8];
    if k.len() == 16 {
        id.copy_from_slice(&k[8..]);
    }
    id
}

pub(super) fn key(time_ms: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(time_ms.max(0) as u64).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

pub(super) type Tx = ConflictableTransactionError<()>;

impl AuditLog {
    /// Open (or create) the log at `path`, keeping at most `max_events` (at least 1), with the
    /// default crop retention (see [`AuditLog::with_crop_retention`]). Its keys are wrapped by
    /// `device`; a log written before sealing is converted first.
    pub fn open(path: &Path, max_events: usize, device: &DeviceKey) -> Result<AuditLog> {
        super::migrate::prepare(path, device)?;
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
        let db = crate::gallery::sled_db::open(path, sled::Mode::LowSpace).map_err(storage)?;
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

    pub(super) fn storage(&self, source: sled::Error) -> AuditError {
        AuditError::Storage {
            path: self.path.display().to_string(),
            source,
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
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
    pub(super) fn store(
        &self,
        event: &Event,
        crop: Option<&[u8]>,
        keep_id: Option<u64>,
    ) -> Result<u64> {
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
    pub(super) fn shred(&self, old: Option<sled::IVec>) -> Result<bool> {
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
    pub(super) fn trim(&self) -> Result<()> {
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
}

/// A chain state from what the trees hold (when the stored one does not authenticate).
pub(super) fn rebuilt_state(chain: &sled::Tree, events: &sled::Tree) -> ChainState {
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
