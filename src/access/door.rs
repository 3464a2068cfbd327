//! The door state machine: the relay, the door contact and the exit button, with the events
//! real controllers report. Pure logic: time comes in with each input, and the caller carries
//! out the relay actions (through `hw::DoorRelay`), so it is tested without hardware.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DoorConfig {
    /// How long the relay stays unlocked after a grant.
    pub unlock_ms: u64,
    /// A door open longer than this raises a held-open alarm.
    pub held_open_ms: u64,
}

/// Why the door was unlocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum UnlockBy {
    Face { person: String },
    Remote,
    ExitButton,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorInput {
    Unlock(UnlockBy),
    DoorOpened,
    DoorClosed,
    /// Time passes (call every few tens of ms).
    Tick,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayAction {
    Unlock,
    Lock,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DoorEvent {
    Unlocked {
        by: UnlockBy,
    },
    Locked,
    Opened,
    Closed,
    /// Open longer than `held_open_ms`.
    HeldOpen {
        open_ms: u64,
    },
    /// Opened while locked, with no grant.
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    Locked,
    Unlocked,
}

/// The door's state, as `GET /v1/door` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DoorStatus {
    pub lock: LockState,
    /// `None` when there is no door contact.
    pub open: Option<bool>,
    pub held_open_alarm: bool,
    pub forced: bool,
}

pub struct Door {
    config: DoorConfig,
    unlocked_until: Option<i64>,
    open_since: Option<i64>,
    has_contact: bool,
    held_alarm: bool,
    forced: bool,
}

impl Door {
    /// A locked door; `has_contact` says whether a door contact is wired.
    pub fn new(config: DoorConfig, has_contact: bool) -> Door {
        Door {
            config,
            unlocked_until: None,
            open_since: None,
            has_contact,
            held_alarm: false,
            forced: false,
        }
    }

    pub fn status(&self) -> DoorStatus {
        DoorStatus {
            lock: if self.unlocked_until.is_some() {
                LockState::Unlocked
            } else {
                LockState::Locked
            },
            open: self.has_contact.then_some(self.open_since.is_some()),
            held_open_alarm: self.held_alarm,
            forced: self.forced,
        }
    }

    /// Apply one input at `now_ms` (milliseconds on a monotonic clock): the relay actions to
    /// carry out, and the events to log.
    pub fn handle(&mut self, input: DoorInput, now_ms: i64) -> (Vec<RelayAction>, Vec<DoorEvent>) {
        let mut actions = Vec::new();
        let mut events = Vec::new();
        match input {
            DoorInput::Unlock(by) => {
                if self.unlocked_until.is_none() {
                    actions.push(RelayAction::Unlock);
                }
                self.unlocked_until = Some(now_ms + self.config.unlock_ms as i64);
                events.push(DoorEvent::Unlocked { by });
            }
            DoorInput::DoorOpened => {
                if self.open_since.is_none() {
                    self.open_since = Some(now_ms);
                    events.push(DoorEvent::Opened);
                    if self.unlocked_until.is_none() {
                        self.forced = true;
                        events.push(DoorEvent::Forced);
                    }
                }
            }
            DoorInput::DoorClosed => {
                if self.open_since.take().is_some() {
                    events.push(DoorEvent::Closed);
                }
                self.held_alarm = false;
                self.forced = false;
            }
            DoorInput::Tick => {}
        }
        // Strictly after: with times in whole milliseconds the relay then stays unlocked at
        // least `unlock_ms`, never a fraction of a millisecond less.
        if let Some(until) = self.unlocked_until
            && now_ms > until
        {
            self.unlocked_until = None;
            actions.push(RelayAction::Lock);
            events.push(DoorEvent::Locked);
        }
        if let Some(since) = self.open_since
            && !self.held_alarm
            && now_ms - since >= self.config.held_open_ms as i64
        {
            self.held_alarm = true;
            events.push(DoorEvent::HeldOpen {
                open_ms: (now_ms - since) as u64,
            });
        }
        (actions, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door() -> Door {
        Door::new(
            DoorConfig {
                unlock_ms: 3000,
                held_open_ms: 20_000,
            },
            true,
        )
    }

    #[test]
    fn grant_unlocks_for_unlock_ms_then_locks() {
        let mut d = door();
        let face = || {
            DoorInput::Unlock(UnlockBy::Face {
                person: "alice".into(),
            })
        };
        let (a, e) = d.handle(face(), 1000);
        assert_eq!(a, vec![RelayAction::Unlock]);
        assert!(matches!(e[0], DoorEvent::Unlocked { .. }));
        assert_eq!(d.status().lock, LockState::Unlocked);
        assert_eq!(d.handle(DoorInput::Tick, 3999).0, vec![]);
        // A second grant extends the time without a second relay edge.
        assert_eq!(d.handle(face(), 2000).0, vec![]);
        assert_eq!(d.handle(DoorInput::Tick, 5000).0, vec![]);
        let (a, e) = d.handle(DoorInput::Tick, 5001);
        assert_eq!(a, vec![RelayAction::Lock]);
        assert_eq!(e, vec![DoorEvent::Locked]);
        assert_eq!(d.status().lock, LockState::Locked);
    }

    #[test]
    fn forced_and_held_open() {
        let mut d = door();
        let (_, e) = d.handle(DoorInput::DoorOpened, 0);
        assert_eq!(e, vec![DoorEvent::Opened, DoorEvent::Forced]);
        assert!(d.status().forced);
        let (_, e) = d.handle(DoorInput::Tick, 20_000);
        assert_eq!(e, vec![DoorEvent::HeldOpen { open_ms: 20_000 }]);
        // The alarm is raised once.
        assert!(d.handle(DoorInput::Tick, 30_000).1.is_empty());
        let (_, e) = d.handle(DoorInput::DoorClosed, 31_000);
        assert_eq!(e, vec![DoorEvent::Closed]);
        assert!(!d.status().held_open_alarm && !d.status().forced);
    }

    #[test]
    fn exit_button_opening_is_not_forced() {
        let mut d = door();
        d.handle(DoorInput::Unlock(UnlockBy::ExitButton), 0);
        let (_, e) = d.handle(DoorInput::DoorOpened, 500);
        assert_eq!(e, vec![DoorEvent::Opened]);
        // Relocks on time while open; closing later is normal.
        let (a, _) = d.handle(DoorInput::Tick, 3001);
        assert_eq!(a, vec![RelayAction::Lock]);
        let (_, e) = d.handle(DoorInput::DoorClosed, 4000);
        assert_eq!(e, vec![DoorEvent::Closed]);
    }
}
