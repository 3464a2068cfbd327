//! What is sent: each record as one JSON object (the same fields as `facegate run`'s JSON
//! lines, plus `seq` and `device`), and the door's current state that MQTT keeps retained.

use serde::Serialize;

use crate::access::daemon::Record;
use crate::access::door::DoorEvent;
use crate::access::policy::Verdict;

/// One event as MQTT and the webhooks carry it.
#[derive(Serialize)]
pub struct Envelope<'a> {
    /// Increases by one or more per event, across restarts: receivers may drop a duplicate
    /// (delivery is at least once) and see a gap where the queue bound dropped events.
    pub seq: u64,
    /// The door (`mqtt.device_id`).
    pub device: &'a str,
    #[serde(flatten)]
    pub record: &'a Record,
}

/// The retained state topics, relative to the prefix, and their payloads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DoorState {
    /// "LOCKED" / "UNLOCKED".
    pub lock: Option<&'static str>,
    /// "OPEN" / "CLOSED" (doors with a contact).
    pub contact: Option<&'static str>,
    /// The last person recognised (granted or refused).
    pub last_person: Option<String>,
    /// JSON: {"outcome", "person", "score", "reason", "at_ms"}.
    pub last_decision: Option<String>,
}

pub const LOCK_TOPIC: &str = "lock/state";
pub const CONTACT_TOPIC: &str = "door/contact";
pub const PERSON_TOPIC: &str = "last/person";
pub const DECISION_TOPIC: &str = "last/decision";

impl DoorState {
    /// A door just started: locked (the door thread drives the relay locked first).
    pub fn started() -> DoorState {
        DoorState {
            lock: Some("LOCKED"),
            ..DoorState::default()
        }
    }

    /// Follow one record. Returns whether anything changed.
    pub fn apply(&mut self, r: &Record) -> bool {
        let before = self.clone();
        match r {
            // A request (API or command line) changes no door state; it is still published
            // as an event.
            Record::Request { .. } => return false,
            Record::Door { event, .. } => match event {
                DoorEvent::Unlocked { .. } => self.lock = Some("UNLOCKED"),
                DoorEvent::Locked => self.lock = Some("LOCKED"),
                DoorEvent::Opened | DoorEvent::Forced | DoorEvent::HeldOpen { .. } => {
                    self.contact = Some("OPEN")
                }
                DoorEvent::Closed => self.contact = Some("CLOSED"),
            },
            Record::Decision { at_ms, verdict, .. } => {
                let (outcome, person, score, reason) = match verdict {
                    Verdict::Granted { person, score } => {
                        ("granted", Some(person.as_str()), *score, None)
                    }
                    Verdict::Denied {
                        person,
                        score,
                        reason,
                    } => (
                        "denied",
                        person.as_deref(),
                        *score,
                        Some(reason.to_string()),
                    ),
                    Verdict::Unknown { score, reason } => {
                        ("unknown", None, *score, Some(reason.to_string()))
                    }
                    _ => return false,
                };
                if let Some(p) = person {
                    self.last_person = Some(p.to_owned());
                }
                self.last_decision = Some(
                    serde_json::json!({
                        "outcome": outcome,
                        "person": person,
                        "score": score,
                        "reason": reason,
                        "at_ms": at_ms,
                    })
                    .to_string(),
                );
            }
        }
        *self != before
    }

    /// (topic relative to the prefix, payload) of every known state.
    pub fn topics(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(l) = self.lock {
            v.push((LOCK_TOPIC, l.to_owned()));
        }
        if let Some(c) = self.contact {
            v.push((CONTACT_TOPIC, c.to_owned()));
        }
        if let Some(p) = &self.last_person {
            v.push((PERSON_TOPIC, p.clone()));
        }
        if let Some(d) = &self.last_decision {
            v.push((DECISION_TOPIC, d.clone()));
        }
        v
    }
}
