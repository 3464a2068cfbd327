//! [`MemoryPin`]: a test stand-in for a GPIO line.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use embedded_hal::digital::{ErrorType, InputPin, OutputPin, StatefulOutputPin};

use crate::hw::time::Clock;

/// **Test stand-in** for a GPIO line (no hardware involved): an embedded-hal output and input
/// pin that keeps its level in memory and records every edge with a timestamp from its
/// [`Clock`]. Clones share the same line, so a test keeps one clone to read back the edges a
/// driver made, or to drive the level an input driver reads ([`MemoryPin::set_level`]).
#[derive(Debug, Clone)]
pub struct MemoryPin {
    line: Arc<Mutex<Line>>,
    clock: Clock,
}

#[derive(Debug)]
struct Line {
    high: bool,
    edges: Vec<Edge>,
    writes: u64,
}

/// A change of level: `high` is the level after the edge, `at` the clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub at: Duration,
    pub high: bool,
}

impl MemoryPin {
    /// A line at `high`, timestamping with a real clock.
    pub fn new(high: bool) -> MemoryPin {
        MemoryPin::with_clock(high, Clock::real())
    }

    pub fn with_clock(high: bool, clock: Clock) -> MemoryPin {
        MemoryPin {
            line: Arc::new(Mutex::new(Line {
                high,
                edges: Vec::new(),
                writes: 0,
            })),
            clock,
        }
    }

    fn line(&self) -> MutexGuard<'_, Line> {
        self.line.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current level.
    pub fn level(&self) -> bool {
        self.line().high
    }

    /// Drive the line (what the outside world does to an input); records an edge on change.
    pub fn set_level(&self, high: bool) {
        let at = self.clock.now();
        let mut line = self.line();
        if line.high != high {
            line.high = high;
            line.edges.push(Edge { at, high });
        }
    }

    /// Every edge so far, oldest first.
    pub fn edges(&self) -> Vec<Edge> {
        self.line().edges.clone()
    }

    /// The edges so far, forgetting them.
    pub fn take_edges(&self) -> Vec<Edge> {
        std::mem::take(&mut self.line().edges)
    }

    /// How many times a driver set the level (changing it or not).
    pub fn writes(&self) -> u64 {
        self.line().writes
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn write(&mut self, high: bool) {
        self.line().writes += 1;
        self.set_level(high);
    }
}

impl ErrorType for MemoryPin {
    type Error = Infallible;
}

impl OutputPin for MemoryPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.write(false);
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.write(true);
        Ok(())
    }
}

impl StatefulOutputPin for MemoryPin {
    fn is_set_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.level())
    }
    fn is_set_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.level())
    }
}

impl InputPin for MemoryPin {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.level())
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.level())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_edges_not_repeated_writes_and_shares_state() {
        let clock = Clock::virtual_clock();
        let mut pin = MemoryPin::with_clock(false, clock.clone());
        let probe = pin.clone();
        pin.set_low().unwrap();
        clock.advance(Duration::from_micros(10));
        pin.set_high().unwrap();
        pin.set_high().unwrap();
        clock.advance(Duration::from_micros(5));
        pin.set_low().unwrap();
        assert_eq!(
            probe.edges(),
            vec![
                Edge {
                    at: Duration::from_micros(10),
                    high: true
                },
                Edge {
                    at: Duration::from_micros(15),
                    high: false
                },
            ]
        );
        assert_eq!(probe.writes(), 4);
        probe.set_level(true);
        assert!(pin.is_high().unwrap());
        assert_eq!(probe.take_edges().len(), 3);
        assert!(probe.edges().is_empty());
    }
}
