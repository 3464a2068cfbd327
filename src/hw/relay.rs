//! The door relay.
//!
//! Two independent settings decide which line level unlocks the door:
//!
//! * **Polarity** of the relay module: active-high (the coil is energised while the line is
//!   high) or active-low (energised while the line is low; common on opto-isolated boards).
//! * **Lock type**: a *fail-secure* lock (electric strike, motor lock) is locked when it has no
//!   power, so the relay is energised to unlock. A *fail-safe* lock (magnetic lock) is open when
//!   it has no power, so the relay is energised to keep the door locked and released to unlock.
//!   A fail-safe door opens on a power cut or a crash of this process (fire-code doors); a
//!   fail-secure door stays shut.
//!
//! | lock type   | polarity    | locked line | unlocked line |
//! |-------------|-------------|-------------|---------------|
//! | fail-secure | active-high | low         | high          |
//! | fail-secure | active-low  | high        | low           |
//! | fail-safe   | active-high | high        | low           |
//! | fail-safe   | active-low  | low         | high          |
//!
//! The relay is driven locked when it is created and again when it is dropped. Timing stays
//! with the caller: a door state machine calls [`Relay::unlock`] and [`Relay::lock`] itself;
//! [`Relay::pulse`] is the blocking helper (unlock, hold, lock).

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;

use crate::hw::config::LockType;
use crate::hw::error::pin_error;
use crate::hw::{DoorRelay, HwError};

/// Electrical and mechanical settings of the relay output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// The coil is energised while the line is low.
    pub active_low: bool,
    pub lock_type: LockType,
}

impl RelayConfig {
    /// Whether the relay coil is energised while the door is unlocked.
    pub fn energised_when_unlocked(&self) -> bool {
        self.lock_type == LockType::FailSecure
    }

    /// The line level (true = high) that puts the door in the given state.
    pub fn line_level(&self, unlocked: bool) -> bool {
        let energised = unlocked == self.energised_when_unlocked();
        energised != self.active_low
    }
}

pub struct Relay<P: OutputPin> {
    pin: P,
    config: RelayConfig,
    unlocked: bool,
}

impl<P: OutputPin> std::fmt::Debug for Relay<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("unlocked", &self.unlocked)
            .finish()
    }
}

impl<P: OutputPin> Relay<P> {
    /// Take the pin and drive it to the locked level at once.
    pub fn new(pin: P, config: RelayConfig) -> Result<Relay<P>, HwError> {
        let mut relay = Relay {
            pin,
            config,
            unlocked: true,
        };
        relay.set(false)?;
        Ok(relay)
    }

    pub fn config(&self) -> RelayConfig {
        self.config
    }

    /// Whether the relay coil is currently energised.
    pub fn energised(&self) -> bool {
        self.unlocked == self.config.energised_when_unlocked()
    }

    fn set(&mut self, unlocked: bool) -> Result<(), HwError> {
        let high = self.config.line_level(unlocked);
        let result = if high {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        };
        result.map_err(pin_error("relay"))?;
        if self.unlocked != unlocked {
            tracing::debug!(unlocked, line_high = high, "relay");
        }
        self.unlocked = unlocked;
        Ok(())
    }

    pub fn unlock(&mut self) -> Result<(), HwError> {
        self.set(true)
    }

    pub fn lock(&mut self) -> Result<(), HwError> {
        self.set(false)
    }

    pub fn is_unlocked(&self) -> bool {
        self.unlocked
    }

    /// Blocking: unlock, hold for `unlock_ms`, lock. The lock is attempted even when the unlock
    /// failed, and its error wins (a door left unlocked is the worse failure).
    pub fn pulse(&mut self, unlock_ms: u32, delay: &mut impl DelayNs) -> Result<(), HwError> {
        let unlocked = self.unlock();
        if unlocked.is_ok() {
            delay.delay_ms(unlock_ms);
        }
        self.lock()?;
        unlocked
    }
}

impl<P: OutputPin> Drop for Relay<P> {
    fn drop(&mut self) {
        if let Err(e) = self.set(false) {
            tracing::error!("cannot lock the relay on shutdown: {e}");
        }
    }
}

impl<P: OutputPin + Send> DoorRelay for Relay<P> {
    fn unlock(&mut self) -> Result<(), HwError> {
        Relay::unlock(self)
    }
    fn lock(&mut self) -> Result<(), HwError> {
        Relay::lock(self)
    }
    fn is_unlocked(&self) -> bool {
        Relay::is_unlocked(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as DelayTx};
    use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};

    use super::*;
    use crate::hw::pins::{Edge, MemoryPin};
    use crate::hw::time::{Clock, StdDelay, VirtualDelay};

    const ALL: [(LockType, bool); 4] = [
        (LockType::FailSecure, false),
        (LockType::FailSecure, true),
        (LockType::FailSafe, false),
        (LockType::FailSafe, true),
    ];

    fn config(lock_type: LockType, active_low: bool) -> RelayConfig {
        RelayConfig {
            active_low,
            lock_type,
        }
    }

    /// The truth table in the module docs, written out independently of `line_level`.
    fn expected_unlocked_high(lock_type: LockType, active_low: bool) -> bool {
        match (lock_type, active_low) {
            (LockType::FailSecure, false) => true,
            (LockType::FailSecure, true) => false,
            (LockType::FailSafe, false) => false,
            (LockType::FailSafe, true) => true,
        }
    }

    fn state(high: bool) -> State {
        if high { State::High } else { State::Low }
    }

    #[test]
    fn exact_pin_writes_for_both_polarities_and_lock_types() {
        for (lock_type, active_low) in ALL {
            let open = expected_unlocked_high(lock_type, active_low);
            let shut = !open;
            let expectations = [
                PinTx::set(state(shut)), // new(): locked at once
                PinTx::set(state(open)), // unlock()
                PinTx::set(state(shut)), // lock()
                PinTx::set(state(open)), // pulse(): unlock
                PinTx::set(state(shut)), // pulse(): lock
                PinTx::set(state(shut)), // drop: locked again
            ];
            let mut pin = PinMock::new(&expectations);
            let mut delay = CheckedDelay::new(&[DelayTx::delay_ms(3000)]);
            let mut relay = Relay::new(pin.clone(), config(lock_type, active_low)).unwrap();
            assert!(!relay.is_unlocked());
            relay.unlock().unwrap();
            assert!(relay.is_unlocked());
            assert_eq!(
                relay.energised(),
                lock_type == LockType::FailSecure,
                "{lock_type:?}: energised while unlocked"
            );
            relay.lock().unwrap();
            assert!(!relay.is_unlocked());
            assert_eq!(relay.energised(), lock_type == LockType::FailSafe);
            relay.pulse(3000, &mut delay).unwrap();
            assert!(!relay.is_unlocked());
            drop(relay);
            pin.done();
            delay.done();
        }
    }

    #[test]
    fn pulse_holds_exactly_unlock_ms_on_a_virtual_clock() {
        for (lock_type, active_low) in ALL {
            let open = expected_unlocked_high(lock_type, active_low);
            let clock = Clock::virtual_clock();
            // Start the line at the *unlocked* level to see construction lock it.
            let pin = MemoryPin::with_clock(open, clock.clone());
            clock.advance(Duration::from_millis(1));
            let mut relay = Relay::new(pin.clone(), config(lock_type, active_low)).unwrap();
            assert_eq!(pin.level(), !open, "construction drives the locked level");
            clock.advance(Duration::from_millis(9));
            relay
                .pulse(2500, &mut VirtualDelay::new(clock.clone()))
                .unwrap();
            assert_eq!(
                pin.edges(),
                vec![
                    Edge {
                        at: Duration::from_millis(1),
                        high: !open
                    },
                    Edge {
                        at: Duration::from_millis(10),
                        high: open
                    },
                    Edge {
                        at: Duration::from_millis(2510),
                        high: !open
                    },
                ],
                "{lock_type:?} active_low={active_low}"
            );
        }
    }

    #[test]
    fn pulse_with_a_real_delay_lasts_at_least_unlock_ms() {
        let pin = MemoryPin::new(false);
        let mut relay = Relay::new(pin.clone(), config(LockType::FailSecure, false)).unwrap();
        relay.pulse(120, &mut StdDelay).unwrap();
        let edges = pin.edges();
        assert_eq!(edges.len(), 2, "{edges:?}");
        assert!(edges[0].high && !edges[1].high);
        let held = edges[1].at - edges[0].at;
        assert!(
            held >= Duration::from_millis(120) && held < Duration::from_millis(1000),
            "{held:?}"
        );
    }

    #[test]
    fn pin_error_names_the_relay_and_pulse_still_locks() {
        use embedded_hal_mock::eh1::MockError;
        let err = MockError::Io(std::io::ErrorKind::BrokenPipe);
        let expectations = [
            PinTx::set(State::Low),
            PinTx::set(State::High).with_error(err),
            PinTx::set(State::Low),
            PinTx::set(State::Low), // drop
        ];
        let mut pin = PinMock::new(&expectations);
        let mut relay = Relay::new(pin.clone(), config(LockType::FailSecure, false)).unwrap();
        let mut delay = CheckedDelay::new(&[]);
        let e = relay.pulse(3000, &mut delay).unwrap_err();
        assert!(e.to_string().contains("relay"), "{e}");
        assert!(!relay.is_unlocked());
        drop(relay);
        pin.done();
        delay.done();
    }
}
