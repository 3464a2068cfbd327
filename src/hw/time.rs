//! Time for the drivers: a [`Clock`] that timestamps pin edges (real, or virtual for tests) and
//! two embedded-hal [`DelayNs`] implementations: [`StdDelay`] really waits, [`VirtualDelay`]
//! only advances a virtual clock so timing tests are exact and instant.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_hal::delay::DelayNs;

/// A monotonic clock giving the time since its creation. Clones share the same origin.
#[derive(Debug, Clone)]
pub struct Clock(Arc<ClockKind>);

#[derive(Debug)]
enum ClockKind {
    Real(Instant),
    Virtual(Mutex<Duration>),
}

impl Clock {
    /// Wall-clock time (`Instant`) since now.
    pub fn real() -> Clock {
        Clock(Arc::new(ClockKind::Real(Instant::now())))
    }

    /// A clock that stands still until [`Clock::advance`] (or a [`VirtualDelay`]) moves it.
    pub fn virtual_clock() -> Clock {
        Clock(Arc::new(ClockKind::Virtual(Mutex::new(Duration::ZERO))))
    }

    pub fn now(&self) -> Duration {
        match &*self.0 {
            ClockKind::Real(origin) => origin.elapsed(),
            ClockKind::Virtual(t) => *t.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Move a virtual clock forward; a real clock ignores this.
    pub fn advance(&self, by: Duration) {
        if let ClockKind::Virtual(t) = &*self.0 {
            *t.lock().unwrap_or_else(|p| p.into_inner()) += by;
        }
    }
}

/// A real delay: sleeps for the bulk of long waits and spins the last stretch, so that
/// microsecond pulses (Wiegand) are not stretched by the scheduler's sleep granularity.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdDelay;

/// Waits shorter than this spin instead of sleeping.
const SPIN_BELOW: Duration = Duration::from_micros(300);

impl StdDelay {
    pub fn wait(d: Duration) {
        let start = Instant::now();
        if d > SPIN_BELOW {
            std::thread::sleep(d - SPIN_BELOW);
        }
        while start.elapsed() < d {
            std::hint::spin_loop();
        }
    }
}

impl DelayNs for StdDelay {
    fn delay_ns(&mut self, ns: u32) {
        StdDelay::wait(Duration::from_nanos(u64::from(ns)));
    }
    fn delay_us(&mut self, us: u32) {
        StdDelay::wait(Duration::from_micros(u64::from(us)));
    }
    fn delay_ms(&mut self, ms: u32) {
        StdDelay::wait(Duration::from_millis(u64::from(ms)));
    }
}

/// Test stand-in for a delay: returns at once and advances a virtual [`Clock`] by the requested
/// time, so pins sharing that clock record edges at exact, deterministic times.
#[derive(Debug, Clone)]
pub struct VirtualDelay {
    clock: Clock,
}

impl VirtualDelay {
    pub fn new(clock: Clock) -> VirtualDelay {
        VirtualDelay { clock }
    }
}

impl DelayNs for VirtualDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.clock.advance(Duration::from_nanos(u64::from(ns)));
    }
    fn delay_us(&mut self, us: u32) {
        self.clock.advance(Duration::from_micros(u64::from(us)));
    }
    fn delay_ms(&mut self, ms: u32) {
        self.clock.advance(Duration::from_millis(u64::from(ms)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_delay_moves_only_its_clock() {
        let clock = Clock::virtual_clock();
        let other = Clock::virtual_clock();
        let mut d = VirtualDelay::new(clock.clone());
        d.delay_us(50);
        d.delay_ms(2);
        d.delay_ns(7);
        assert_eq!(clock.now(), Duration::from_nanos(2_050_007));
        assert_eq!(other.now(), Duration::ZERO);
    }

    #[test]
    fn std_delay_waits_at_least_the_time_asked() {
        for us in [40u32, 900, 3000] {
            let t = Instant::now();
            StdDelay.delay_us(us);
            let took = t.elapsed();
            assert!(
                took >= Duration::from_micros(u64::from(us)),
                "{us} us took {took:?}"
            );
        }
    }
}
