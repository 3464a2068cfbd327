//! Wiegand 26 / 34 output: sends a card number to an existing access-control panel on two
//! lines, DATA0 and DATA1, so facegate can stand in for a card reader.
//!
//! Both lines idle high. Each bit is a low pulse of `pulse_us` on D0 (a 0) or D1 (a 1); pulses
//! start every `interval_us`. A frame is an even-parity bit, the data bits (most significant
//! first), then an odd-parity bit: the even parity covers the first half of the data bits, the
//! odd parity the second half.
//!
//! | format | data bits | facility code | card number | parity halves |
//! |--------|-----------|---------------|-------------|---------------|
//! | 26     | 24        | 8 bits        | 16 bits     | 12 + 12       |
//! | 34     | 32        | 16 bits       | 16 bits     | 16 + 16       |
//!
//! Sending is blocking (26 bits at 2 ms take 52 ms): from async code, run it on a blocking
//! thread.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;

use crate::hw::error::pin_error;
use crate::hw::{CardOutput, HwError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WiegandFormat {
    W26,
    W34,
}

impl WiegandFormat {
    /// 26 or 34.
    pub fn from_bits(bits: u8) -> Option<WiegandFormat> {
        match bits {
            26 => Some(WiegandFormat::W26),
            34 => Some(WiegandFormat::W34),
            _ => None,
        }
    }

    /// Bits on the wire, parity included.
    pub fn bits(self) -> usize {
        self.data_bits() + 2
    }

    pub fn data_bits(self) -> usize {
        match self {
            WiegandFormat::W26 => 24,
            WiegandFormat::W34 => 32,
        }
    }

    pub fn facility_bits(self) -> usize {
        self.data_bits() - 16
    }
}

/// A card number as an access panel knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardNumber {
    /// Facility (site) code and card number.
    FacilityCard { facility: u32, card: u32 },
    /// All data bits as one number (24 bits for W26, 32 for W34).
    Raw(u64),
}

/// The bits of one frame, in the order they are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiegandFrame {
    format: WiegandFormat,
    bits: Vec<bool>,
}

impl WiegandFrame {
    pub fn new(format: WiegandFormat, card: CardNumber) -> Result<WiegandFrame, HwError> {
        let n = format.data_bits();
        let data = match card {
            CardNumber::FacilityCard { facility, card } => {
                let fbits = format.facility_bits();
                if u64::from(facility) >> fbits != 0 {
                    return Err(HwError::Wiegand(format!(
                        "facility code {facility} does not fit in {fbits} bits (Wiegand {})",
                        format.bits()
                    )));
                }
                if card >> 16 != 0 {
                    return Err(HwError::Wiegand(format!(
                        "card number {card} does not fit in 16 bits (Wiegand {})",
                        format.bits()
                    )));
                }
                (u64::from(facility) << 16) | u64::from(card)
            }
            CardNumber::Raw(raw) => {
                if raw >> n != 0 {
                    return Err(HwError::Wiegand(format!(
                        "card data {raw} does not fit in {n} bits (Wiegand {})",
                        format.bits()
                    )));
                }
                raw
            }
        };
        let data_bits: Vec<bool> = (0..n).rev().map(|i| (data >> i) & 1 == 1).collect();
        let ones = |bits: &[bool]| bits.iter().filter(|b| **b).count();
        let (first, second) = data_bits.split_at(n / 2);
        let even = ones(first) % 2 == 1; // makes the count of ones in parity+first half even
        let odd = ones(second) % 2 == 0; // makes the count in second half+parity odd
        let mut bits = Vec::with_capacity(n + 2);
        bits.push(even);
        bits.extend_from_slice(&data_bits);
        bits.push(odd);
        Ok(WiegandFrame { format, bits })
    }

    pub fn format(&self) -> WiegandFormat {
        self.format
    }

    pub fn bits(&self) -> &[bool] {
        &self.bits
    }

    /// "1000…" in sending order, for logs and tests.
    pub fn to_bit_string(&self) -> String {
        self.bits
            .iter()
            .map(|b| if *b { '1' } else { '0' })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WiegandTiming {
    /// Width of each low pulse, microseconds (typically 20-100).
    pub pulse_us: u32,
    /// From the start of one pulse to the start of the next, microseconds (typically 2000).
    pub interval_us: u32,
}

impl Default for WiegandTiming {
    fn default() -> Self {
        WiegandTiming {
            pulse_us: 50,
            interval_us: 2000,
        }
    }
}

/// A Wiegand transmitter on two output pins.
pub struct WiegandOutput<P: OutputPin, D: DelayNs> {
    d0: P,
    d1: P,
    delay: D,
    format: WiegandFormat,
    timing: WiegandTiming,
    invert: bool,
}

impl<P: OutputPin, D: DelayNs> std::fmt::Debug for WiegandOutput<P, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WiegandOutput")
            .field("format", &self.format)
            .field("timing", &self.timing)
            .field("invert", &self.invert)
            .finish()
    }
}

impl<P: OutputPin, D: DelayNs> WiegandOutput<P, D> {
    /// Takes the pins and drives both lines idle. `invert` is for D0/D1 driven through an
    /// inverting transistor stage: the GPIO is then low at idle and high during a pulse.
    pub fn new(
        d0: P,
        d1: P,
        delay: D,
        format: WiegandFormat,
        timing: WiegandTiming,
        invert: bool,
    ) -> Result<Self, HwError> {
        if timing.pulse_us == 0 || timing.interval_us < timing.pulse_us {
            return Err(HwError::Wiegand(format!(
                "bad timing {timing:?}: the pulse must be shorter than the interval"
            )));
        }
        let mut out = WiegandOutput {
            d0,
            d1,
            delay,
            format,
            timing,
            invert,
        };
        out.idle()?;
        Ok(out)
    }

    pub fn format(&self) -> WiegandFormat {
        self.format
    }

    fn drive(pin: &mut P, role: &'static str, high: bool) -> Result<(), HwError> {
        if high { pin.set_high() } else { pin.set_low() }.map_err(pin_error(role))
    }

    fn idle(&mut self) -> Result<(), HwError> {
        let idle = !self.invert;
        Self::drive(&mut self.d0, "wiegand D0", idle)?;
        Self::drive(&mut self.d1, "wiegand D1", idle)
    }

    /// Send one frame (blocking for bits × interval).
    pub fn send_frame(&mut self, frame: &WiegandFrame) -> Result<(), HwError> {
        let active = self.invert;
        let gap = self.timing.interval_us - self.timing.pulse_us;
        for &bit in frame.bits() {
            let (pin, role) = if bit {
                (&mut self.d1, "wiegand D1")
            } else {
                (&mut self.d0, "wiegand D0")
            };
            let pulse_us = self.timing.pulse_us;
            let delay = &mut self.delay;
            let pulse = Self::drive(pin, role, active).and_then(|()| {
                delay.delay_us(pulse_us);
                Self::drive(pin, role, !active)
            });
            if let Err(e) = pulse {
                // Leave the lines idle whatever happened.
                let _ = self.idle();
                return Err(e);
            }
            self.delay.delay_us(gap);
        }
        tracing::debug!(bits = %frame.to_bit_string(), "Wiegand frame sent");
        Ok(())
    }

    /// Build the frame for `card` in this output's format and send it.
    pub fn send(&mut self, card: CardNumber) -> Result<WiegandFrame, HwError> {
        let frame = WiegandFrame::new(self.format, card)?;
        self.send_frame(&frame)?;
        Ok(frame)
    }
}

impl<P: OutputPin + Send, D: DelayNs + Send> CardOutput for WiegandOutput<P, D> {
    fn send_card(&mut self, card: CardNumber) -> Result<(), HwError> {
        self.send(card).map(|_| ())
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

    fn frame(format: WiegandFormat, facility: u32, card: u32) -> String {
        WiegandFrame::new(format, CardNumber::FacilityCard { facility, card })
            .unwrap()
            .to_bit_string()
    }

    // Expected frames worked out by hand: [even parity][data, MSB first][odd parity].
    #[test]
    fn wiegand_26_known_cards() {
        use WiegandFormat::W26;
        // Facility 1 = 00000001, card 1 = 0000000000000001.
        // First 12 data bits 000000010000 hold one 1 -> even parity 1.
        // Last 12 data bits 000000000001 hold one 1 -> odd parity 0.
        assert_eq!(
            frame(W26, 1, 1),
            "1_00000001_0000000000000001_0".replace('_', "")
        );
        // Facility 123 = 01111011, card 4567 = 0001000111010111.
        // First 12: 01111011 0001 -> seven 1s -> even parity 1.
        // Last 12: 000111010111 -> seven 1s -> odd parity 0.
        assert_eq!(
            frame(W26, 123, 4567),
            "1_01111011_0001000111010111_0".replace('_', "")
        );
        // All zeros: even parity 0, odd parity 1.
        assert_eq!(frame(W26, 0, 0), format!("0{}1", "0".repeat(24)));
        // All ones: twelve 1s in each half -> even parity 0, odd parity 1.
        assert_eq!(frame(W26, 255, 65535), format!("0{}1", "1".repeat(24)));
        // Facility 18 = 00010010, card 1234 = 0000010011010010.
        // First 12: 00010010 0000 -> two 1s -> even parity 0.
        // Last 12: 010011010010 -> five 1s -> odd parity 0.
        assert_eq!(
            frame(W26, 18, 1234),
            "0_00010010_0000010011010010_0".replace('_', "")
        );
        // Raw 24-bit data is the same as facility << 16 | card.
        let raw = WiegandFrame::new(W26, CardNumber::Raw((123 << 16) | 4567)).unwrap();
        assert_eq!(raw.to_bit_string(), frame(W26, 123, 4567));
        assert_eq!(raw.bits().len(), 26);
    }

    #[test]
    fn wiegand_34_known_cards() {
        use WiegandFormat::W34;
        // Facility 1, card 1: each 16-bit half holds one 1 -> even parity 1, odd parity 0.
        assert_eq!(
            frame(W34, 1, 1),
            "1_0000000000000001_0000000000000001_0".replace('_', "")
        );
        // Raw 0xFFFFFFFF: sixteen 1s per half -> even parity 0, odd parity 1.
        let f = WiegandFrame::new(W34, CardNumber::Raw(0xFFFF_FFFF)).unwrap();
        assert_eq!(f.to_bit_string(), format!("0{}1", "1".repeat(32)));
        // Facility 4660 = 0x1234 = 0001001000110100 (five 1s -> even parity 1),
        // card 22136 = 0x5678 = 0101011001111000 (eight 1s -> odd parity 1).
        assert_eq!(
            frame(W34, 0x1234, 0x5678),
            "1_0001001000110100_0101011001111000_1".replace('_', "")
        );
    }

    #[test]
    fn numbers_that_do_not_fit_are_refused() {
        let e = WiegandFrame::new(
            WiegandFormat::W26,
            CardNumber::FacilityCard {
                facility: 256,
                card: 1,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("facility code 256"), "{e}");
        assert!(
            WiegandFrame::new(
                WiegandFormat::W34,
                CardNumber::FacilityCard {
                    facility: 1,
                    card: 65536
                }
            )
            .is_err()
        );
        assert!(WiegandFrame::new(WiegandFormat::W26, CardNumber::Raw(1 << 24)).is_err());
        assert!(WiegandFrame::new(WiegandFormat::W34, CardNumber::Raw(1 << 32)).is_err());
        assert!(WiegandFrame::new(WiegandFormat::W34, CardNumber::Raw((1 << 32) - 1)).is_ok());
    }

    #[test]
    fn pin_writes_and_delays_through_mocks() {
        // W26 facility 1 card 1: 1 00000001 0000000000000001 0.
        let bits = "10000000100000000000000010";
        let mut d0_tx = vec![PinTx::set(State::High)]; // idle at start
        let mut d1_tx = vec![PinTx::set(State::High)];
        let mut delay_tx = Vec::new();
        for b in bits.chars() {
            let tx = if b == '1' { &mut d1_tx } else { &mut d0_tx };
            tx.push(PinTx::set(State::Low));
            tx.push(PinTx::set(State::High));
            delay_tx.push(DelayTx::delay_us(50));
            delay_tx.push(DelayTx::delay_us(1950));
        }
        let mut d0 = PinMock::new(&d0_tx);
        let mut d1 = PinMock::new(&d1_tx);
        let mut delay = CheckedDelay::new(&delay_tx);
        let mut out = WiegandOutput::new(
            d0.clone(),
            d1.clone(),
            delay.clone(),
            WiegandFormat::W26,
            WiegandTiming::default(),
            false,
        )
        .unwrap();
        let sent = out
            .send(CardNumber::FacilityCard {
                facility: 1,
                card: 1,
            })
            .unwrap();
        assert_eq!(sent.to_bit_string(), bits);
        d0.done();
        d1.done();
        delay.done();
    }

    /// Read a frame back from the two lines' edges: each falling edge is a bit.
    fn decode(d0: &[Edge], d1: &[Edge], idle_high: bool) -> Vec<(Duration, Duration, bool)> {
        let mut pulses = Vec::new();
        for (edges, bit) in [(d0, false), (d1, true)] {
            for pair in edges.chunks(2) {
                assert_eq!(pair.len(), 2, "unfinished pulse on D{}", u8::from(bit));
                assert_eq!(pair[0].high, !idle_high, "pulse starts at the active level");
                assert_eq!(pair[1].high, idle_high, "pulse ends at idle");
                pulses.push((pair[0].at, pair[1].at - pair[0].at, bit));
            }
        }
        pulses.sort();
        pulses
    }

    #[test]
    fn exact_timing_on_a_virtual_clock_both_formats_and_inverted() {
        for (format, facility, card, invert) in [
            (WiegandFormat::W26, 123, 4567, false),
            (WiegandFormat::W34, 0x1234, 0x5678, true),
        ] {
            let clock = Clock::virtual_clock();
            let d0 = MemoryPin::with_clock(false, clock.clone());
            let d1 = MemoryPin::with_clock(false, clock.clone());
            let timing = WiegandTiming {
                pulse_us: 80,
                interval_us: 1500,
            };
            let mut out = WiegandOutput::new(
                d0.clone(),
                d1.clone(),
                VirtualDelay::new(clock.clone()),
                format,
                timing,
                invert,
            )
            .unwrap();
            // Construction drove the lines idle (high unless inverted); forget those edges.
            assert_eq!(d0.level(), !invert);
            assert_eq!(d1.level(), !invert);
            d0.take_edges();
            d1.take_edges();
            let sent = out
                .send(CardNumber::FacilityCard { facility, card })
                .unwrap();
            let pulses = decode(&d0.edges(), &d1.edges(), !invert);
            assert_eq!(pulses.len(), format.bits());
            for (i, (start, width, bit)) in pulses.iter().enumerate() {
                assert_eq!(
                    *start,
                    Duration::from_micros(1500 * i as u64),
                    "bit {i} start"
                );
                assert_eq!(*width, Duration::from_micros(80), "bit {i} width");
                assert_eq!(*bit, sent.bits()[i], "bit {i} line");
            }
            assert_eq!(
                clock.now(),
                Duration::from_micros(1500 * format.bits() as u64)
            );
        }
    }

    #[test]
    fn real_timing_pulses_are_at_least_as_configured() {
        let d0 = MemoryPin::new(true);
        let d1 = MemoryPin::new(true);
        let mut out = WiegandOutput::new(
            d0.clone(),
            d1.clone(),
            StdDelay,
            WiegandFormat::W26,
            WiegandTiming::default(),
            false,
        )
        .unwrap();
        let sent = out.send(CardNumber::Raw(0xA5_5A5A)).unwrap();
        let pulses = decode(&d0.edges(), &d1.edges(), true);
        assert_eq!(pulses.len(), 26);
        let got: Vec<bool> = pulses.iter().map(|p| p.2).collect();
        assert_eq!(got, sent.bits());
        for (i, w) in pulses.windows(2).enumerate() {
            assert!(
                w[0].1 >= Duration::from_micros(50),
                "pulse {i}: {:?}",
                w[0].1
            );
            assert!(
                w[1].0 - w[0].0 >= Duration::from_micros(2000),
                "interval {i}: {:?}",
                w[1].0 - w[0].0
            );
        }
    }
}
