//! The audit log: every access decision, enrollment and deletion, in its own sled database.
//!
//! Events are keyed by `(time_ms, id)` (both big-endian), so a time range is one range scan
//! and the oldest event is the first key. The log holds at most `max_events`: appending past
//! that drops the oldest. Records name person ids only, never images or embeddings.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log at {path}: {source}")]
    Storage { path: String, source: sled::Error },
    #[error("audit log record is damaged: {0}")]
    Corrupt(String),
    #[error("invalid audit query: {0}")]
    Invalid(String),
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

/// Who produced the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventSource {
    Api,
    Door,
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

/// An event as the caller describes it; the log adds id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub action: Action,
    pub outcome: Outcome,
    pub source: EventSource,
    pub person: Option<String>,
    pub template: Option<u64>,
    pub score: Option<f32>,
    pub reason: Option<String>,
    pub quality: Option<FaceQuality>,
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

pub struct AuditLog {
    db: sled::Db,
    events: sled::Tree,
    path: PathBuf,
    max_events: usize,
    /// Number of stored events; the lock also orders appends with trimming.
    count: Mutex<usize>,
}

fn key(time_ms: i64, id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&(time_ms.max(0) as u64).to_be_bytes());
    k[8..].copy_from_slice(&id.to_be_bytes());
    k
}

impl AuditLog {
    /// Open (or create) the log at `path`, keeping at most `max_events` (at least 1).
    pub fn open(path: &Path, max_events: usize) -> Result<AuditLog> {
        let storage = |source| AuditError::Storage {
            path: path.display().to_string(),
            source,
        };
        let db = sled::open(path).map_err(storage)?;
        let events = db.open_tree("events").map_err(storage)?;
        let log = AuditLog {
            count: Mutex::new(events.len()),
            db,
            events,
            path: path.to_owned(),
            max_events: max_events.max(1),
        };
        log.trim()?;
        Ok(log)
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

    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        *self.lock()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record an event now.
    pub fn append(&self, new: NewEvent) -> Result<Event> {
        self.append_at(new, crate::gallery::now_ms())
    }

    /// Record an event with a given time (Unix ms).
    pub fn append_at(&self, new: NewEvent, time_ms: i64) -> Result<Event> {
        let id = self.db.generate_id().map_err(|e| self.storage(e))?;
        let event = Event {
            id,
            time_ms,
            action: new.action,
            outcome: new.outcome,
            source: new.source,
            person: new.person,
            template: new.template,
            score: new.score,
            reason: new.reason,
            quality: new.quality,
        };
        let value = serde_json::to_vec(&event)
            .map_err(|e| AuditError::Corrupt(format!("event encode: {e}")))?;
        {
            let mut count = self.lock();
            let old = self
                .events
                .insert(key(time_ms, id), value)
                .map_err(|e| self.storage(e))?;
            if old.is_none() {
                *count += 1;
            }
        }
        self.trim()?;
        Ok(event)
    }

    /// Drop the oldest events beyond `max_events`.
    fn trim(&self) -> Result<()> {
        let mut count = self.lock();
        while *count > self.max_events {
            match self.events.pop_min().map_err(|e| self.storage(e))? {
                Some(_) => *count -= 1,
                None => {
                    *count = 0;
                    break;
                }
            }
        }
        Ok(())
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
            let e: Event = serde_json::from_slice(&v)
                .map_err(|e| AuditError::Corrupt(format!("event record: {e}")))?;
            if !filter.matches(&e) {
                continue;
            }
            if events.len() == limit {
                more = true;
                break;
            }
            events.push(e);
        }
        let next = if more {
            events.last().map(Event::cursor)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    /// Write everything to disk now (sled also does it on its own every half second).
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.storage(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "facegate-audit-{name}-{}-{}",
            std::process::id(),
            crate::gallery::now_ms()
        ));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn ev(outcome: Outcome, person: &str) -> NewEvent {
        NewEvent::new(Action::Identify, outcome, EventSource::Api).person(person)
    }

    #[test]
    fn filters_paginates_newest_first_and_keeps_the_bound() {
        let dir = tmp("basic");
        let log = AuditLog::open(&dir, 5).unwrap();
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
        let log = AuditLog::open(&dir, 3).unwrap();
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
}
