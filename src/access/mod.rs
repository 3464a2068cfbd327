//! Access decisions and their record. So far: the [`audit`] log, shared by the HTTP API and
//! (later) the door daemon.

pub mod audit;

pub use audit::{Action, AuditLog, Event, EventFilter, EventPage, EventSource, NewEvent, Outcome};

use crate::gallery::Person;

/// Why a recognised person is refused now, or `None` when they may enter: disabled, not valid
/// yet, or no longer valid. Weekly schedules need the door's local time and are left to the
/// door's state machine.
pub fn refusal(person: &Person, now_ms: i64) -> Option<String> {
    if !person.enabled {
        return Some("person is disabled".into());
    }
    if let Some(from) = person.valid_from
        && now_ms < from
    {
        return Some(format!("person is not valid before {from} (Unix ms)"));
    }
    if let Some(until) = person.valid_until
        && now_ms >= until
    {
        return Some(format!("person was valid until {until} (Unix ms)"));
    }
    None
}
