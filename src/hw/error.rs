//! The one error type of the hardware layer. Every variant names the device (GPIO chip and line,
//! I2C bus, framebuffer path) so a log line is enough to find the miswired or missing part.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HwError {
    #[error("no GPIO chip labelled {label:?} (chips found: {found})")]
    ChipNotFound { label: String, found: String },

    #[error("GPIO chip {chip} ({label}) has {lines} lines; line {line} does not exist")]
    LineOutOfRange {
        chip: String,
        label: String,
        line: u32,
        lines: u32,
    },

    #[error("GPIO {chip} line {line} ({role}) is busy: already requested by {consumer:?}")]
    LineBusy {
        chip: String,
        line: u32,
        role: &'static str,
        consumer: String,
    },

    #[error("GPIO {chip} line {line} ({role}): {detail}")]
    Gpio {
        chip: String,
        line: u32,
        role: &'static str,
        detail: String,
    },

    /// A read or write on an already opened pin failed.
    #[error("pin {role}: {detail}")]
    Pin { role: &'static str, detail: String },

    #[error("I2C bus {bus}, address {address:#04x}: {detail}")]
    I2c {
        bus: PathBuf,
        address: u8,
        detail: String,
    },

    #[error("display: {0}")]
    Display(String),

    #[error("framebuffer {path}: {detail}")]
    Framebuffer { path: PathBuf, detail: String },

    #[error("cannot write PNG {path}: {detail}")]
    Png { path: PathBuf, detail: String },

    #[error("Wiegand: {0}")]
    Wiegand(String),

    #[error("hardware config: {0}")]
    Config(String),

    /// The configuration asks for something this build does not include (a cargo feature).
    #[error("{0}")]
    Unsupported(String),
}

/// Map an embedded-hal pin error (they all implement `Debug`) into [`HwError::Pin`].
pub(crate) fn pin_error<E: core::fmt::Debug>(role: &'static str) -> impl Fn(E) -> HwError {
    move |e| HwError::Pin {
        role,
        detail: format!("{e:?}"),
    }
}
