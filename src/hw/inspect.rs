//! Checking the configured door hardware without operating it, for `facegate doctor`.
//!
//! **The door is never unlocked by a check.** GPIO lines are only *inspected* through the
//! kernel's line information ([`LineInfo`]): no line is requested, so none is driven,
//! reconfigured or released, and a relay held by a running `facegate run` is not disturbed.
//! (Requesting the relay line, even as an input, could change its level: a released or
//! floating line energises some relay boards, which opens a fail-safe magnetic lock.) With the
//! in-memory backend the check builds the same stand-in hardware `facegate run` would, whose
//! relay starts at the locked level ([`check_memory_backend`]).
//!
//! Displays are opened but nothing is drawn: a framebuffer's format is read, an SSD1306 is
//! sent one no-operation command, a PNG display's folder is tested for writing.

use std::path::Path;

use embedded_hal::i2c::I2c;

use super::config::{DisplayKind, HwConfig, LockType};
use super::pins::cdev::LineUse;
use super::relay::RelayConfig;
use super::{Hardware, HwError, MemoryHardware};

/// Read-only view of a GPIO chip's lines. Deliberately offers no way to request or drive one.
pub trait LineInfo {
    fn num_lines(&self) -> u32;
    fn line_use(&mut self, line: u32) -> Result<LineUse, String>;
}

impl LineInfo for super::pins::GpioChip {
    fn num_lines(&self) -> u32 {
        super::pins::GpioChip::num_lines(self)
    }
    fn line_use(&mut self, line: u32) -> Result<LineUse, String> {
        super::pins::GpioChip::line_use(self, line).map_err(|e| e.to_string())
    }
}

/// What was found on one configured line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineState {
    /// Nobody holds it: `facegate run` can request it.
    Free,
    /// Held by a facegate process (`facegate run` is running): expected while the door runs.
    Facegate {
        consumer: String,
    },
    /// Held by another program or a kernel driver: `facegate run` cannot use it.
    Busy {
        consumer: String,
    },
    /// The chip has fewer lines.
    OutOfRange {
        lines: u32,
    },
    Unreadable(String),
}

/// One configured line and what was found on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCheck {
    /// The configuration key (`relay_line`, `door_contact_line`, ...).
    pub key: &'static str,
    pub line: u32,
    pub state: LineState,
}

impl LineCheck {
    /// Whether `facegate run` would fail on this line.
    pub fn is_problem(&self) -> bool {
        matches!(
            self.state,
            LineState::Busy { .. } | LineState::OutOfRange { .. } | LineState::Unreadable(_)
        )
    }

    /// "relay line 17 free", "door contact line 27 is used by \"spi0 CS0\" ...".
    pub fn describe(&self) -> String {
        let what = format!("{} line {}", role_of(self.key), self.line);
        match &self.state {
            LineState::Free => format!("{what} free"),
            LineState::Facegate { consumer } => {
                format!("{what} held by a running facegate ({consumer})")
            }
            LineState::Busy { consumer } => format!(
                "{what} is used by {consumer:?}: free it (another program, or a device-tree \
                 overlay) or change hw.{}",
                self.key
            ),
            LineState::OutOfRange { lines } => format!(
                "{what} does not exist: the chip has lines 0..{}; fix hw.{}",
                lines.saturating_sub(1),
                self.key
            ),
            LineState::Unreadable(e) => format!("{what}: cannot read its state: {e}"),
        }
    }
}

fn role_of(key: &str) -> &'static str {
    match key {
        "relay_line" => "relay",
        "door_contact_line" => "door contact",
        "exit_button_line" => "exit button",
        "wiegand_d0_line" => "Wiegand D0",
        "wiegand_d1_line" => "Wiegand D1",
        _ => "GPIO",
    }
}

/// Inspect every configured line (relay, door contact, exit button, Wiegand when enabled).
/// Only reads line information: see the module documentation.
pub fn check_lines(cfg: &HwConfig, chip: &mut dyn LineInfo) -> Vec<LineCheck> {
    let lines = chip.num_lines();
    cfg.lines()
        .into_iter()
        .map(|(key, line)| {
            let state = if line >= lines {
                LineState::OutOfRange { lines }
            } else {
                match chip.line_use(line) {
                    Err(e) => LineState::Unreadable(e),
                    Ok(u) if !u.used => LineState::Free,
                    Ok(u) => match u.consumer {
                        Some(c) if c.starts_with("facegate") => LineState::Facegate { consumer: c },
                        Some(c) => LineState::Busy { consumer: c },
                        None => LineState::Busy {
                            consumer: "a kernel driver or another program".into(),
                        },
                    },
                }
            };
            LineCheck { key, line, state }
        })
        .collect()
}

/// Which line level locks and which unlocks the door, in words a technician can check with a
/// meter: "locked at line low, unlocked at line high (fail-secure lock, active-high relay)".
pub fn relay_levels(cfg: &HwConfig) -> String {
    let r = RelayConfig {
        active_low: cfg.relay_active_low,
        lock_type: cfg.lock_type,
    };
    let level = |high: bool| if high { "high" } else { "low" };
    format!(
        "locked at line {}, unlocked at line {} ({} lock, {} relay)",
        level(r.line_level(false)),
        level(r.line_level(true)),
        match cfg.lock_type {
            LockType::FailSecure => "fail-secure",
            LockType::FailSafe => "fail-safe",
        },
        if cfg.relay_active_low {
            "active-low"
        } else {
            "active-high"
        }
    )
}

/// The in-memory backend: build the stand-in hardware exactly as `facegate run` would (this
/// checks the `[hw]` settings assemble, e.g. the Wiegand format), with its relay at the locked
/// level. The handles let a caller (and the tests) read the relay line back.
pub fn check_memory_backend(cfg: &HwConfig) -> Result<(Hardware, MemoryHardware), HwError> {
    cfg.check().map_err(HwError::Config)?;
    let (hw, handles) = Hardware::memory(cfg)?;
    if hw.relay.is_unlocked() || handles.relay_unlocked() {
        // Cannot happen: `Relay::new` drives the locked level first. Refuse loudly if it ever
        // does rather than report a healthy door.
        return Err(HwError::Config(
            "the in-memory relay did not start locked".into(),
        ));
    }
    Ok((hw, handles))
}

/// The no-operation command of the SSD1306 (control byte 0x00 = command, then NOP 0xE3): it
/// changes nothing on the display, and an acknowledged write proves a controller answers.
pub const SSD1306_NOP: [u8; 2] = [0x00, 0xE3];

/// Whether an SSD1306 (or anything) acknowledges at `address` on this bus.
pub fn ssd1306_answers<I: I2c>(i2c: &mut I, address: u8) -> Result<(), String> {
    i2c.write(address, &SSD1306_NOP)
        .map_err(|e| format!("nothing acknowledged a write at address {address:#04x}: {e:?}"))
}

/// Check the configured display without drawing on it. Returns what was found ("640x480,
/// 32 bits per pixel"); `hw.display = "none"` gives `Ok("no display")`.
pub fn check_display(cfg: &HwConfig) -> Result<String, HwError> {
    match cfg.display {
        DisplayKind::None => Ok("no display".into()),
        DisplayKind::Png => {
            let path = &cfg.png_path;
            let png = |detail: String| HwError::Png {
                path: path.clone(),
                detail,
            };
            if path.is_dir() {
                return Err(png("is a folder; hw.png_path must name a file".into()));
            }
            if path.exists() {
                // Opened for appending and closed: nothing is written.
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .map_err(|e| png(format!("cannot be rewritten: {e}")))?;
                return Ok(format!("writes {}", path.display()));
            }
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(png(format!(
                    "its folder {} does not exist",
                    parent.display()
                )));
            }
            crate::host::check_writable_dir(parent).map_err(png)?;
            Ok(format!("writes {} (folder writable)", path.display()))
        }
        DisplayKind::Framebuffer => {
            let path = &cfg.framebuffer;
            if !path.exists() {
                return Err(HwError::Framebuffer {
                    path: path.clone(),
                    detail: "does not exist".into(),
                });
            }
            let fb = super::display::fbdev::LinuxFramebuffer::open(path)?;
            let f = fb.format();
            Ok(format!(
                "{} {}x{}, {} bits per pixel",
                path.display(),
                f.width,
                f.height,
                f.bits_per_pixel
            ))
        }
        DisplayKind::Ssd1306 => {
            let i2c_err = |detail: String| HwError::I2c {
                bus: cfg.i2c_bus.clone(),
                address: cfg.i2c_address,
                detail,
            };
            if !cfg.i2c_bus.exists() {
                return Err(i2c_err("the bus device does not exist".into()));
            }
            let mut bus = linux_embedded_hal::I2cdev::new(&cfg.i2c_bus)
                .map_err(|e| i2c_err(format!("cannot open: {e}")))?;
            ssd1306_answers(&mut bus, cfg.i2c_address).map_err(i2c_err)?;
            Ok(format!(
                "SSD1306 answers on {} at {:#04x}",
                cfg.i2c_bus.display(),
                cfg.i2c_address
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::config::GpioBackend;
    use crate::hw::pins::MemoryPin;
    use std::collections::HashMap;

    /// Stand-in GPIO chip for tests: lines are [`MemoryPin`]s, some held by a named consumer.
    struct MemoryChip {
        lines: u32,
        pins: HashMap<u32, MemoryPin>,
        held: HashMap<u32, String>,
        reads: u32,
    }

    impl LineInfo for MemoryChip {
        fn num_lines(&self) -> u32 {
            self.lines
        }
        fn line_use(&mut self, line: u32) -> Result<LineUse, String> {
            self.reads += 1;
            let pin = self.pins.get(&line);
            Ok(LineUse {
                used: self.held.contains_key(&line),
                consumer: self.held.get(&line).cloned(),
                output: pin.is_some(),
            })
        }
    }

    const ALL: [(LockType, bool); 4] = [
        (LockType::FailSecure, false),
        (LockType::FailSecure, true),
        (LockType::FailSafe, false),
        (LockType::FailSafe, true),
    ];

    fn cfg(lock_type: LockType, active_low: bool) -> HwConfig {
        HwConfig {
            lock_type,
            relay_active_low: active_low,
            door_contact_line: Some(27),
            exit_button_line: Some(22),
            ..HwConfig::default()
        }
    }

    #[test]
    fn inspecting_lines_never_moves_the_relay() {
        for (lock_type, active_low) in ALL {
            let cfg = cfg(lock_type, active_low);
            let locked = RelayConfig {
                active_low,
                lock_type,
            }
            .line_level(false);
            // The relay line as a running door leaves it: at the locked level, held.
            let relay = MemoryPin::new(locked);
            let mut chip = MemoryChip {
                lines: 54,
                pins: HashMap::from([(17, relay.clone())]),
                held: HashMap::from([(17, "facegate-relay".to_string())]),
                reads: 0,
            };
            let checks = check_lines(&cfg, &mut chip);
            assert_eq!(chip.reads, 3, "relay, door contact, exit button inspected");
            assert!(
                relay.edges().is_empty(),
                "{lock_type:?} {active_low}: no edge"
            );
            assert_eq!(relay.writes(), 0, "the relay line is never written");
            assert_eq!(relay.level(), locked);
            assert_eq!(
                checks[0].state,
                LineState::Facegate {
                    consumer: "facegate-relay".into()
                }
            );
            assert!(checks.iter().all(|c| !c.is_problem()), "{checks:?}");
        }
    }

    #[test]
    fn the_memory_backend_check_builds_a_locked_relay_and_never_unlocks() {
        for (lock_type, active_low) in ALL {
            let cfg = HwConfig {
                gpio_backend: GpioBackend::Memory,
                ..cfg(lock_type, active_low)
            };
            let (hw, mem) = check_memory_backend(&cfg).unwrap();
            let unlocked = RelayConfig {
                active_low,
                lock_type,
            }
            .line_level(true);
            assert!(!mem.relay_unlocked());
            drop(hw);
            assert!(
                mem.relay.edges().iter().all(|e| e.high != unlocked),
                "{lock_type:?} active_low={active_low}: an unlock edge {:?}",
                mem.relay.edges()
            );
            assert!(!mem.relay_unlocked(), "still locked after the check");
        }
        // A setting that does not assemble is reported.
        let bad = HwConfig {
            gpio_backend: GpioBackend::Memory,
            unlock_ms: 1,
            ..HwConfig::default()
        };
        assert!(
            check_memory_backend(&bad)
                .err()
                .unwrap()
                .to_string()
                .contains("hw.unlock_ms")
        );
    }

    #[test]
    fn busy_missing_and_foreign_lines_are_problems_that_name_the_key() {
        let cfg = HwConfig {
            relay_line: 17,
            door_contact_line: Some(8),
            exit_button_line: Some(60),
            ..HwConfig::default()
        };
        let mut chip = MemoryChip {
            lines: 54,
            pins: HashMap::new(),
            held: HashMap::from([(8, "spi0 CS0".to_string())]),
            reads: 0,
        };
        let checks = check_lines(&cfg, &mut chip);
        assert_eq!(checks.len(), 3);
        assert_eq!(checks[0].state, LineState::Free);
        assert_eq!(checks[0].describe(), "relay line 17 free");
        assert!(checks[1].is_problem());
        let m = checks[1].describe();
        assert!(
            m.contains("door contact line 8")
                && m.contains("spi0 CS0")
                && m.contains("hw.door_contact_line"),
            "{m}"
        );
        assert_eq!(checks[2].state, LineState::OutOfRange { lines: 54 });
        let m = checks[2].describe();
        assert!(
            m.contains("0..53") && m.contains("hw.exit_button_line"),
            "{m}"
        );
    }

    #[test]
    fn relay_levels_are_spelled_out() {
        assert_eq!(
            relay_levels(&cfg(LockType::FailSecure, false)),
            "locked at line low, unlocked at line high (fail-secure lock, active-high relay)"
        );
        assert_eq!(
            relay_levels(&cfg(LockType::FailSafe, false)),
            "locked at line high, unlocked at line low (fail-safe lock, active-high relay)"
        );
        assert_eq!(
            relay_levels(&cfg(LockType::FailSafe, true)),
            "locked at line low, unlocked at line high (fail-safe lock, active-low relay)"
        );
    }

    #[test]
    fn the_ssd1306_probe_sends_one_nop_command() {
        use embedded_hal_mock::eh1::i2c::{Mock, Transaction};
        let mut i2c = Mock::new(&[Transaction::write(0x3C, SSD1306_NOP.to_vec())]);
        ssd1306_answers(&mut i2c, 0x3C).unwrap();
        i2c.done();
        use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
        let err = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);
        let mut i2c = Mock::new(&[Transaction::write(0x3D, SSD1306_NOP.to_vec()).with_error(err)]);
        let e = ssd1306_answers(&mut i2c, 0x3D).unwrap_err();
        assert!(e.contains("0x3d") && e.contains("NoAcknowledge"), "{e}");
        i2c.done();
    }

    #[test]
    fn display_checks_name_the_device_and_write_nothing() {
        let dir = std::env::temp_dir().join(format!("facegate-inspect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let png = HwConfig {
            display: DisplayKind::Png,
            png_path: dir.join("status.png"),
            ..HwConfig::default()
        };
        assert!(check_display(&png).unwrap().contains("status.png"));
        assert!(!dir.join("status.png").exists(), "nothing written");
        let missing = HwConfig {
            png_path: dir.join("no/such/status.png"),
            ..png.clone()
        };
        let e = check_display(&missing).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let fb = HwConfig {
            display: DisplayKind::Framebuffer,
            framebuffer: dir.join("fb9"),
            ..HwConfig::default()
        };
        let e = check_display(&fb).unwrap_err().to_string();
        assert!(e.contains("fb9") && e.contains("does not exist"), "{e}");
        let oled = HwConfig {
            display: DisplayKind::Ssd1306,
            i2c_bus: dir.join("i2c-9"),
            ..HwConfig::default()
        };
        let e = check_display(&oled).unwrap_err().to_string();
        assert!(e.contains("i2c-9") && e.contains("0x3c"), "{e}");
        assert_eq!(check_display(&HwConfig::default()).unwrap(), "no display");
    }
}
