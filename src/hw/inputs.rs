//! Door contact and request-to-exit button: polled, debounced inputs producing events.
//!
//! Call [`DoorInputs::poll`] every few milliseconds (10 ms is plenty). An input must read its
//! new level on every poll for at least the debounce time before the change counts; then one
//! event is produced. Levels at start-up are taken as they are, without events.

use std::time::{Duration, Instant};

use embedded_hal::digital::InputPin;

use crate::hw::error::pin_error;
use crate::hw::{DoorSensors, HwError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEvent {
    DoorOpened,
    DoorClosed,
    ExitPressed,
}

/// Electrical settings of the two inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputConfig {
    pub debounce: Duration,
    /// The door contact reads high while the door is closed.
    pub door_closed_high: bool,
    /// The exit button reads high while pressed.
    pub exit_pressed_high: bool,
}

/// One debounced input. `active` is the logical state (door closed / button pressed).
struct Debounced<P> {
    pin: P,
    role: &'static str,
    active_high: bool,
    active: bool,
    /// Since when the raw reading has differed from `active`.
    changing_since: Option<Instant>,
}

impl<P: InputPin> Debounced<P> {
    fn new(mut pin: P, role: &'static str, active_high: bool) -> Result<Self, HwError> {
        let active = pin.is_high().map_err(pin_error(role))? == active_high;
        Ok(Debounced {
            pin,
            role,
            active_high,
            active,
            changing_since: None,
        })
    }

    /// The new logical state, when a change has lasted the debounce time.
    fn poll(&mut self, now: Instant, debounce: Duration) -> Result<Option<bool>, HwError> {
        let raw = self.pin.is_high().map_err(pin_error(self.role))? == self.active_high;
        if raw == self.active {
            self.changing_since = None;
            return Ok(None);
        }
        let since = *self.changing_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= debounce {
            self.active = raw;
            self.changing_since = None;
            tracing::debug!(input = self.role, active = raw, "input changed");
            return Ok(Some(raw));
        }
        Ok(None)
    }
}

/// The door contact and exit button; either may be absent (not wired).
pub struct DoorInputs<P: InputPin> {
    door: Option<Debounced<P>>,
    exit: Option<Debounced<P>>,
    debounce: Duration,
}

impl<P: InputPin> std::fmt::Debug for DoorInputs<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoorInputs")
            .field("door_closed", &self.door_closed())
            .field("exit_pressed", &self.exit_pressed())
            .field("debounce", &self.debounce)
            .finish()
    }
}

impl<P: InputPin> DoorInputs<P> {
    /// Reads both inputs once to learn their current state.
    pub fn new(door: Option<P>, exit: Option<P>, config: InputConfig) -> Result<Self, HwError> {
        Ok(DoorInputs {
            door: door
                .map(|p| Debounced::new(p, "door contact", config.door_closed_high))
                .transpose()?,
            exit: exit
                .map(|p| Debounced::new(p, "exit button", config.exit_pressed_high))
                .transpose()?,
            debounce: config.debounce,
        })
    }

    /// Poll at an explicit time (tests; a caller with its own clock).
    pub fn poll_at(&mut self, now: Instant) -> Result<Vec<InputEvent>, HwError> {
        let mut events = Vec::new();
        if let Some(door) = &mut self.door
            && let Some(closed) = door.poll(now, self.debounce)?
        {
            events.push(if closed {
                InputEvent::DoorClosed
            } else {
                InputEvent::DoorOpened
            });
        }
        if let Some(exit) = &mut self.exit
            && exit.poll(now, self.debounce)? == Some(true)
        {
            events.push(InputEvent::ExitPressed);
        }
        Ok(events)
    }

    pub fn poll(&mut self) -> Result<Vec<InputEvent>, HwError> {
        self.poll_at(Instant::now())
    }

    /// Debounced door state; `None` without a door contact.
    pub fn door_closed(&self) -> Option<bool> {
        self.door.as_ref().map(|d| d.active)
    }

    /// Debounced button state; `None` without an exit button.
    pub fn exit_pressed(&self) -> Option<bool> {
        self.exit.as_ref().map(|d| d.active)
    }
}

impl<P: InputPin + Send> DoorSensors for DoorInputs<P> {
    fn poll(&mut self) -> Result<Vec<InputEvent>, HwError> {
        DoorInputs::poll(self)
    }
    fn door_closed(&self) -> Option<bool> {
        DoorInputs::door_closed(self)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};

    use super::*;
    use crate::hw::pins::MemoryPin;
    use InputEvent::*;

    fn config(debounce_ms: u64) -> InputConfig {
        InputConfig {
            debounce: Duration::from_millis(debounce_ms),
            door_closed_high: false,
            exit_pressed_high: true,
        }
    }

    #[test]
    fn door_bounces_are_ignored_and_a_held_change_is_one_event() {
        use State::{High, Low};
        // Door closed = low. Start closed; every poll is one read, in order.
        let reads = [
            Low,  // new(): closed
            High, // t=0: bounce...
            Low,  // t=5: ...back: no event, timer reset
            High, // t=10: opening starts
            High, // t=40: 30 ms, not yet
            Low,  // t=45: bounce resets the timer
            High, // t=50: starts again
            High, // t=99: 49 ms, not yet
            High, // t=100: 50 ms: DoorOpened
            High, // t=200: stable, nothing
            Low,  // t=210: closing starts
            Low,  // t=260: DoorClosed
        ];
        let tx: Vec<PinTx> = reads.iter().map(|s| PinTx::get(*s)).collect();
        let mut pin = PinMock::new(&tx);
        let mut inputs = DoorInputs::new(Some(pin.clone()), None, config(50)).unwrap();
        assert_eq!(inputs.door_closed(), Some(true));
        assert_eq!(inputs.exit_pressed(), None);
        let t0 = Instant::now();
        let mut events = Vec::new();
        for ms in [0, 5, 10, 40, 45, 50, 99, 100, 200, 210, 260] {
            let got = inputs.poll_at(t0 + Duration::from_millis(ms)).unwrap();
            events.extend(got.into_iter().map(|e| (ms, e)));
        }
        assert_eq!(events, vec![(100, DoorOpened), (260, DoorClosed)]);
        assert_eq!(inputs.door_closed(), Some(true));
        pin.done();
    }

    #[test]
    fn exit_press_is_one_event_per_press_through_memory_pins() {
        let door = MemoryPin::new(false); // closed (active low)
        let exit = MemoryPin::new(false); // released (active high)
        let mut inputs =
            DoorInputs::new(Some(door.clone()), Some(exit.clone()), config(20)).unwrap();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        exit.set_level(true);
        assert!(inputs.poll_at(at(0)).unwrap().is_empty());
        assert_eq!(inputs.poll_at(at(20)).unwrap(), vec![ExitPressed]);
        assert!(
            inputs.poll_at(at(500)).unwrap().is_empty(),
            "held: no repeat"
        );
        exit.set_level(false);
        assert!(inputs.poll_at(at(510)).unwrap().is_empty());
        assert!(
            inputs.poll_at(at(530)).unwrap().is_empty(),
            "release: no event"
        );
        assert_eq!(inputs.exit_pressed(), Some(false));
        // Door opens and the button is pressed in the same window: both, door first.
        exit.set_level(true);
        door.set_level(true);
        assert!(inputs.poll_at(at(600)).unwrap().is_empty());
        assert_eq!(
            inputs.poll_at(at(620)).unwrap(),
            vec![DoorOpened, ExitPressed]
        );
        assert_eq!(inputs.door_closed(), Some(false));
    }

    #[test]
    fn zero_debounce_reports_on_the_first_poll() {
        let door = MemoryPin::new(true); // starts open (closed = low)
        let mut inputs = DoorInputs::new(Some(door.clone()), None, config(0)).unwrap();
        assert_eq!(inputs.door_closed(), Some(false));
        door.set_level(false);
        assert_eq!(inputs.poll().unwrap(), vec![DoorClosed]);
    }

    #[test]
    fn read_error_names_the_input() {
        use embedded_hal_mock::eh1::MockError;
        let err = MockError::Io(std::io::ErrorKind::Other);
        let tx = [PinTx::get(State::Low).with_error(err)];
        let mut pin = PinMock::new(&tx);
        let e = DoorInputs::new(None, Some(pin.clone()), config(50)).unwrap_err();
        assert!(e.to_string().contains("exit button"), "{e}");
        pin.done();
    }
}
