//! Access decisions: the policy that turns frames into grant / deny / unknown ([`policy`]), the
//! per-person rules it applies ([`rules`]), the door state machine ([`door`]), the door loop
//! that joins camera, vision, gallery, policy and hardware ([`daemon`]), and the [`audit`] log
//! shared by the door and the HTTP API.

pub mod audit;
pub mod calibration;
pub mod camera_view;
pub mod cohort;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod door;
pub mod policy;
pub mod probe;
pub mod recognition;
pub mod rules;
pub mod when;

pub use audit::{
    Action, AuditLog, CropRetention, Event, EventFilter, EventPage, EventSource, NewEvent, Outcome,
};

use crate::gallery::Person;

/// Why a recognised person is refused at `now_ms`, or `None` when they may enter (the door's
/// rules: enabled flag, validity window, weekly schedule in local time).
pub fn refusal(person: &Person, now_ms: i64) -> Option<String> {
    rules::check(person, now_ms, rules::LocalTime::at(now_ms))
        .err()
        .map(|r| r.to_string())
}
