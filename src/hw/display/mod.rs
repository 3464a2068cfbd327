//! The status display: six screens drawn with embedded-graphics on a 128x64 monochrome canvas
//! ([`draw_screen`]), and the displays that show them: an SSD1306 OLED on I2C ([`oled`]), a
//! Linux framebuffer ([`fbdev`]) and PNG files ([`png`]). Bigger or colour targets get the
//! 128x64 layout through [`Fit`], which scales by a whole number, centres and maps colours.

pub mod fbdev;
mod fit;
pub mod oled;
pub mod png;
mod screens;

use embedded_graphics::pixelcolor::Rgb888;

pub use fit::{Fit, LOGICAL_SIZE};
pub use screens::{draw_screen, wrap_text};

use crate::hw::{HwError, StatusDisplay};

/// What the door shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Waiting for someone.
    Idle,
    /// A face is in view and being recognised.
    Looking,
    /// Recognised and let in.
    Granted { name: String },
    /// Refused; `reason` is shown to the person (keep it short and polite).
    Denied { reason: String },
    /// The controller cannot reach what it needs over the network.
    Offline,
    /// The camera stopped delivering frames.
    CameraLost,
    /// The liveness challenge: turn the head to the person's own left (`left`) or right.
    TurnHead { left: bool },
}

impl Screen {
    /// A short lowercase name, e.g. for file names.
    pub fn slug(&self) -> &'static str {
        match self {
            Screen::Idle => "idle",
            Screen::Looking => "looking",
            Screen::Granted { .. } => "granted",
            Screen::Denied { .. } => "denied",
            Screen::Offline => "offline",
            Screen::CameraLost => "camera_lost",
            Screen::TurnHead { .. } => "turn_head",
        }
    }

    /// The foreground colour on colour displays.
    pub fn accent(&self) -> Rgb888 {
        match self {
            Screen::Granted { .. } => Rgb888::new(0x30, 0xE0, 0x60),
            Screen::Denied { .. } => Rgb888::new(0xFF, 0x40, 0x40),
            Screen::Offline | Screen::CameraLost => Rgb888::new(0xFF, 0xB0, 0x20),
            Screen::Idle | Screen::Looking | Screen::TurnHead { .. } => {
                Rgb888::new(0xFF, 0xFF, 0xFF)
            }
        }
    }
}

/// No display fitted: screens are only logged.
#[derive(Debug, Default)]
pub struct NullDisplay;

impl StatusDisplay for NullDisplay {
    fn show(&mut self, screen: &Screen) -> Result<(), HwError> {
        tracing::debug!(?screen, "status (no display)");
        Ok(())
    }
}
