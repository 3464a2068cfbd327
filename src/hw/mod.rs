//! Door hardware: the relay that unlocks the door, the door contact and exit button, the
//! status display and the optional Wiegand output.
//!
//! The door loop talks to hardware only through four small traits: [`DoorRelay`],
//! [`DoorSensors`], [`StatusDisplay`] and [`CardOutput`]. [`open_from_config`] builds the real
//! implementations from the `[hw]` configuration section ([`HwConfig`]); [`Hardware::memory`]
//! builds in-memory stand-ins with handles to drive and inspect them (tests, and machines with
//! no GPIO).
//!
//! All calls are synchronous and quick except [`CardOutput::send_card`] (tens of
//! milliseconds); timing (how long the door stays unlocked, how often inputs are polled) is
//! the caller's. From async code, call them from a blocking thread or accept the short block.

pub mod config;
pub mod display;
mod error;
pub mod inputs;
pub mod inspect;
pub mod pins;
pub mod relay;
pub mod time;
pub mod wiegand;

use std::sync::{Arc, Mutex};

use embedded_hal::digital::{InputPin, OutputPin};

pub use config::HwConfig;
use config::{DisplayKind, GpioBackend};
pub use display::Screen;
use display::png::{DisplayLog, PngDisplay};
pub use error::HwError;
pub use inputs::InputEvent;
use inputs::{DoorInputs, InputConfig};
use pins::MemoryPin;
use relay::{Relay, RelayConfig};
use time::StdDelay;
pub use wiegand::CardNumber;
use wiegand::{WiegandFormat, WiegandOutput, WiegandTiming};

/// The door relay.
pub trait DoorRelay: Send {
    fn unlock(&mut self) -> Result<(), HwError>;
    fn lock(&mut self) -> Result<(), HwError>;
    fn is_unlocked(&self) -> bool;
}

/// Door contact and exit button.
pub trait DoorSensors: Send {
    /// Read the inputs; events for changes that have outlasted the debounce time. Call every
    /// few milliseconds (10 ms is plenty).
    fn poll(&mut self) -> Result<Vec<InputEvent>, HwError>;
    /// Debounced door state; `None` without a door contact.
    fn door_closed(&self) -> Option<bool>;
}

/// The status display.
pub trait StatusDisplay: Send {
    fn show(&mut self, screen: &Screen) -> Result<(), HwError>;
}

/// A card-number output to an access panel (Wiegand). Blocks while sending.
pub trait CardOutput: Send {
    fn send_card(&mut self, card: CardNumber) -> Result<(), HwError>;
}

/// Everything the door loop drives.
pub struct Hardware {
    pub relay: Box<dyn DoorRelay>,
    pub inputs: Box<dyn DoorSensors>,
    pub display: Box<dyn StatusDisplay>,
    /// Present when `wiegand_enabled`.
    pub wiegand: Option<Box<dyn CardOutput>>,
    /// How long a grant unlocks the door (`hw.unlock_ms`).
    pub unlock_ms: u32,
}

impl std::fmt::Debug for Hardware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hardware")
            .field("relay_unlocked", &self.relay.is_unlocked())
            .field("door_closed", &self.inputs.door_closed())
            .field("wiegand", &self.wiegand.is_some())
            .field("unlock_ms", &self.unlock_ms)
            .finish()
    }
}

fn relay_config(cfg: &HwConfig) -> RelayConfig {
    RelayConfig {
        active_low: cfg.relay_active_low,
        lock_type: cfg.lock_type,
    }
}

fn input_config(cfg: &HwConfig) -> InputConfig {
    InputConfig {
        debounce: std::time::Duration::from_millis(u64::from(cfg.debounce_ms)),
        door_closed_high: cfg.door_closed_level.is_high(),
        exit_pressed_high: cfg.exit_pressed_level.is_high(),
    }
}

fn wiegand_format(cfg: &HwConfig) -> Result<WiegandFormat, HwError> {
    WiegandFormat::from_bits(cfg.wiegand_format).ok_or_else(|| {
        HwError::Config(format!(
            "hw.wiegand_format = {} (26 or 34)",
            cfg.wiegand_format
        ))
    })
}

/// Put the parts together; generic over the pin types of each backend.
fn assemble<O, I>(
    cfg: &HwConfig,
    relay_pin: O,
    door: Option<I>,
    exit: Option<I>,
    wiegand: Option<(O, O)>,
    display: Box<dyn StatusDisplay>,
) -> Result<Hardware, HwError>
where
    O: OutputPin + Send + 'static,
    I: InputPin + Send + 'static,
{
    let relay = Relay::new(relay_pin, relay_config(cfg))?;
    let inputs = DoorInputs::new(door, exit, input_config(cfg))?;
    let wiegand = match wiegand {
        Some((d0, d1)) => {
            let timing = WiegandTiming {
                pulse_us: cfg.wiegand_pulse_us,
                interval_us: cfg.wiegand_interval_us,
            };
            let out = WiegandOutput::new(
                d0,
                d1,
                StdDelay,
                wiegand_format(cfg)?,
                timing,
                cfg.wiegand_invert,
            )?;
            Some(Box::new(out) as Box<dyn CardOutput>)
        }
        None => None,
    };
    Ok(Hardware {
        relay: Box::new(relay),
        inputs: Box::new(inputs),
        display,
        wiegand,
        unlock_ms: cfg.unlock_ms,
    })
}

/// Open the configured display.
pub fn open_display(cfg: &HwConfig) -> Result<Box<dyn StatusDisplay>, HwError> {
    Ok(match cfg.display {
        DisplayKind::None => Box::new(display::NullDisplay),
        DisplayKind::Png => Box::new(PngDisplay::new(Some(cfg.png_path.clone()), 1)),
        DisplayKind::Framebuffer => {
            Box::new(display::fbdev::LinuxFramebuffer::open(&cfg.framebuffer)?)
        }
        DisplayKind::Ssd1306 => {
            let i2c_err = |detail: String| HwError::I2c {
                bus: cfg.i2c_bus.clone(),
                address: cfg.i2c_address,
                detail,
            };
            let bus = linux_embedded_hal::I2cdev::new(&cfg.i2c_bus)
                .map_err(|e| i2c_err(format!("cannot open: {e}")))?;
            let oled = display::oled::Ssd1306Display::new(bus, cfg.i2c_address)
                .map_err(|e| i2c_err(e.to_string()))?;
            tracing::info!(bus = %cfg.i2c_bus.display(), address = cfg.i2c_address, "SSD1306 display initialised");
            Box::new(oled)
        }
    })
}

/// Build the real hardware described by `cfg`: the relay is driven locked before anything
/// else is opened.
pub fn open_from_config(cfg: &HwConfig) -> Result<Hardware, HwError> {
    cfg.check().map_err(HwError::Config)?;
    match cfg.gpio_backend {
        GpioBackend::Memory => {
            tracing::warn!("hw.gpio_backend = \"memory\": no door is driven");
            let display = match cfg.display {
                DisplayKind::None | DisplayKind::Png => None,
                _ => Some(open_display(cfg)?),
            };
            Ok(Hardware::memory_with_display(cfg, display)?.0)
        }
        GpioBackend::Cdev => {
            let mut chip = pins::GpioChip::open(&cfg.gpio_chip)?;
            let locked = relay_config(cfg).line_level(false);
            let relay = chip.output(cfg.relay_line, "relay", locked)?;
            let door = cfg
                .door_contact_line
                .map(|l| chip.input(l, "door contact"))
                .transpose()?;
            let exit = cfg
                .exit_button_line
                .map(|l| chip.input(l, "exit button"))
                .transpose()?;
            let wiegand = if cfg.wiegand_enabled {
                let idle = !cfg.wiegand_invert;
                Some((
                    chip.output(cfg.wiegand_d0_line, "wiegand D0", idle)?,
                    chip.output(cfg.wiegand_d1_line, "wiegand D1", idle)?,
                ))
            } else {
                None
            };
            let display = open_display(cfg)?;
            assemble(cfg, relay, door, exit, wiegand, display)
        }
        GpioBackend::Rppal => open_rppal(cfg),
    }
}

#[cfg(feature = "rpi")]
fn open_rppal(cfg: &HwConfig) -> Result<Hardware, HwError> {
    let gpio = pins::rpi::RpiGpio::open()?;
    let locked = relay_config(cfg).line_level(false);
    let relay = gpio.output(cfg.relay_line, "relay", locked)?;
    let door = cfg
        .door_contact_line
        .map(|l| gpio.input(l, "door contact", cfg.door_closed_level.is_high()))
        .transpose()?;
    let exit = cfg
        .exit_button_line
        .map(|l| gpio.input(l, "exit button", cfg.exit_pressed_level.is_high()))
        .transpose()?;
    let wiegand = if cfg.wiegand_enabled {
        let idle = !cfg.wiegand_invert;
        Some((
            gpio.output(cfg.wiegand_d0_line, "wiegand D0", idle)?,
            gpio.output(cfg.wiegand_d1_line, "wiegand D1", idle)?,
        ))
    } else {
        None
    };
    let display = open_display(cfg)?;
    assemble(cfg, relay, door, exit, wiegand, display)
}

#[cfg(not(feature = "rpi"))]
fn open_rppal(_cfg: &HwConfig) -> Result<Hardware, HwError> {
    Err(HwError::Unsupported(
        "hw.gpio_backend = \"rppal\" needs facegate built with `--features rpi`; \
         \"cdev\" works on a Raspberry Pi too"
            .into(),
    ))
}

/// Handles on the in-memory stand-ins of [`Hardware::memory`]: read the relay line, drive the
/// door contact and exit button, watch the Wiegand lines and the screens shown.
#[derive(Debug, Clone)]
pub struct MemoryHardware {
    pub relay: MemoryPin,
    pub door: MemoryPin,
    pub exit: MemoryPin,
    pub wiegand_d0: MemoryPin,
    pub wiegand_d1: MemoryPin,
    pub display: Arc<Mutex<DisplayLog>>,
    relay_config: RelayConfig,
    inputs: InputConfig,
}

impl MemoryHardware {
    /// Whether the relay line is at the unlocking level.
    pub fn relay_unlocked(&self) -> bool {
        self.relay.level() == self.relay_config.line_level(true)
    }

    pub fn set_door_closed(&self, closed: bool) {
        self.door.set_level(closed == self.inputs.door_closed_high);
    }

    pub fn set_exit_pressed(&self, pressed: bool) {
        self.exit
            .set_level(pressed == self.inputs.exit_pressed_high);
    }

    /// Every screen shown so far (empty when a real display was configured).
    pub fn screens(&self) -> Vec<Screen> {
        self.display
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shown
            .clone()
    }
}

impl Hardware {
    /// In-memory stand-ins: [`MemoryPin`]s for every line (door closed, exit released at the
    /// start; door contact and exit button always present) and a PNG display kept in memory,
    /// also written to `png_path` when `display = "png"`. The returned handles drive and
    /// inspect them.
    pub fn memory(cfg: &HwConfig) -> Result<(Hardware, MemoryHardware), HwError> {
        Hardware::memory_with_display(cfg, None)
    }

    fn memory_with_display(
        cfg: &HwConfig,
        display: Option<Box<dyn StatusDisplay>>,
    ) -> Result<(Hardware, MemoryHardware), HwError> {
        let relay_config = relay_config(cfg);
        let inputs = input_config(cfg);
        let idle = !cfg.wiegand_invert;
        let handles_display: Arc<Mutex<DisplayLog>>;
        let display = match display {
            Some(d) => {
                handles_display = Arc::default();
                d
            }
            None => {
                let path = (cfg.display == DisplayKind::Png).then(|| cfg.png_path.clone());
                let png = PngDisplay::new(path, 1);
                handles_display = png.log();
                Box::new(png)
            }
        };
        let handles = MemoryHardware {
            relay: MemoryPin::new(relay_config.line_level(false)),
            door: MemoryPin::new(inputs.door_closed_high),
            exit: MemoryPin::new(!inputs.exit_pressed_high),
            wiegand_d0: MemoryPin::new(idle),
            wiegand_d1: MemoryPin::new(idle),
            display: handles_display,
            relay_config,
            inputs,
        };
        let wiegand = cfg
            .wiegand_enabled
            .then(|| (handles.wiegand_d0.clone(), handles.wiegand_d1.clone()));
        let hw = assemble(
            cfg,
            handles.relay.clone(),
            Some(handles.door.clone()),
            Some(handles.exit.clone()),
            wiegand,
            display,
        )?;
        Ok((hw, handles))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::config::{Level, LockType};

    #[test]
    fn hardware_can_move_into_a_tokio_task() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Hardware>();
        assert_send::<MemoryHardware>();
    }

    #[test]
    fn memory_hardware_drives_and_reads_through_the_traits() {
        let cfg = HwConfig {
            lock_type: LockType::FailSafe,
            relay_active_low: true,
            exit_pressed_level: Level::High,
            debounce_ms: 0,
            wiegand_enabled: true,
            wiegand_pulse_us: 20,
            wiegand_interval_us: 200,
            ..HwConfig::default()
        };
        let (mut hw, h) = Hardware::memory(&cfg).unwrap();
        assert!(!hw.relay.is_unlocked());
        assert!(!h.relay_unlocked());
        // Fail-safe, active-low: locked = energised = line low.
        assert!(!h.relay.level());
        hw.relay.unlock().unwrap();
        assert!(h.relay_unlocked() && h.relay.level());
        hw.relay.lock().unwrap();
        assert!(!h.relay_unlocked());

        assert_eq!(hw.inputs.door_closed(), Some(true));
        h.set_door_closed(false);
        h.set_exit_pressed(true);
        assert_eq!(
            hw.inputs.poll().unwrap(),
            vec![InputEvent::DoorOpened, InputEvent::ExitPressed]
        );
        assert!(h.exit.level(), "exit pressed = high here");

        hw.display.show(&Screen::Idle).unwrap();
        hw.display
            .show(&Screen::Granted { name: "Ada".into() })
            .unwrap();
        assert_eq!(
            h.screens(),
            vec![Screen::Idle, Screen::Granted { name: "Ada".into() }]
        );

        let wiegand = hw.wiegand.as_mut().unwrap();
        wiegand
            .send_card(CardNumber::FacilityCard {
                facility: 1,
                card: 1,
            })
            .unwrap();
        // 1 00000001 0000000000000001 0: three 1s on D1, twenty-three 0s on D0.
        assert_eq!(h.wiegand_d1.edges().len(), 2 * 3);
        assert_eq!(h.wiegand_d0.edges().len(), 2 * 23);
        drop(hw);
        assert!(
            !h.relay_unlocked(),
            "dropping the hardware leaves the door locked"
        );
    }

    #[test]
    fn no_wiegand_unless_enabled_and_config_errors_surface() {
        let (hw, _) = Hardware::memory(&HwConfig::default()).unwrap();
        assert!(hw.wiegand.is_none());
        let bad = HwConfig {
            unlock_ms: 5,
            ..HwConfig::default()
        };
        let e = open_from_config(&bad).unwrap_err();
        assert!(e.to_string().contains("hw.unlock_ms"), "{e}");
    }

    #[test]
    fn missing_gpio_chip_is_named() {
        let cfg = HwConfig {
            gpio_chip: "no-such-chip-label".into(),
            ..HwConfig::default()
        };
        let e = open_from_config(&cfg).unwrap_err();
        assert!(
            matches!(e, HwError::ChipNotFound { .. })
                && e.to_string().contains("no-such-chip-label"),
            "{e}"
        );
    }

    #[cfg(not(feature = "rpi"))]
    #[test]
    fn rppal_backend_without_the_feature_says_so() {
        let cfg = HwConfig {
            gpio_backend: GpioBackend::Rppal,
            ..HwConfig::default()
        };
        let e = open_from_config(&cfg).unwrap_err();
        assert!(e.to_string().contains("--features rpi"), "{e}");
    }
}
