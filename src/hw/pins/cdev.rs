//! GPIO lines through the Linux GPIO character device (`/dev/gpiochip*`) as
//! `linux-embedded-hal` [`CdevPin`]s. The chip is found by its label, which is stable across
//! boots and kernels, unlike the `gpiochipN` numbering.

use linux_embedded_hal::CdevPin;
use linux_embedded_hal::gpio_cdev::{Chip, Line, LineDirection, LineInfo, LineRequestFlags, chips};

use crate::hw::HwError;

/// How a line is in use, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineUse {
    /// Requested by a program or claimed by a kernel driver.
    pub used: bool,
    /// Who holds it ("facegate-relay", a driver's name), when it says.
    pub consumer: Option<String>,
    pub output: bool,
}

/// The GPIO chips of this machine as "gpiochip0 \"pinctrl-bcm2711\" (58 lines)"; empty when
/// there is no `/dev/gpiochip*` at all.
pub fn list_chips() -> Result<Vec<String>, String> {
    let iter = chips().map_err(|e| format!("cannot list /dev: {e}"))?;
    Ok(iter
        .map(|chip| match chip {
            Ok(c) => format!("{} {:?} ({} lines)", c.name(), c.label(), c.num_lines()),
            Err(e) => format!("(unreadable: {e})"),
        })
        .collect())
}

/// An opened GPIO chip, from which lines are requested.
pub struct GpioChip {
    chip: Chip,
    name: String,
    label: String,
}

impl std::fmt::Debug for GpioChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpioChip({} {:?})", self.name, self.label)
    }
}

impl GpioChip {
    /// The chip whose label is `label` (as `gpiodetect` prints it); a device name such as
    /// `gpiochip0` is accepted too. The error lists the chips that were found.
    pub fn open(label: &str) -> Result<GpioChip, HwError> {
        let mut found = Vec::new();
        let iter = chips().map_err(|e| HwError::ChipNotFound {
            label: label.into(),
            found: format!("none: cannot list /dev: {e}"),
        })?;
        for chip in iter {
            match chip {
                Ok(chip) => {
                    let name = chip.name().to_owned();
                    let chip_label = chip.label().to_owned();
                    if chip_label == label || name == label {
                        tracing::info!(chip = %name, label = %chip_label, lines = chip.num_lines(), "GPIO chip opened");
                        return Ok(GpioChip {
                            chip,
                            name,
                            label: chip_label,
                        });
                    }
                    found.push(format!("{name} {chip_label:?}"));
                }
                Err(e) => found.push(format!("(unreadable: {e})")),
            }
        }
        Err(HwError::ChipNotFound {
            label: label.into(),
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn num_lines(&self) -> u32 {
        self.chip.num_lines()
    }

    /// What the kernel says about `line`, read without requesting it: nothing is driven,
    /// reconfigured or released (`facegate doctor` relies on this around the door relay).
    pub fn line_use(&mut self, line: u32) -> Result<LineUse, HwError> {
        let (_, info) = self.line(line, "inspect")?;
        Ok(LineUse {
            // The v1 line-info ABI flags every requested line "kernel", whoever holds it.
            used: info.is_kernel(),
            consumer: info.consumer().map(str::to_owned),
            output: info.direction() == LineDirection::Out,
        })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Request `line` as an output, starting at `initial_high` (no glitch: the level is set in
    /// the same request).
    pub fn output(
        &mut self,
        line: u32,
        role: &'static str,
        initial_high: bool,
    ) -> Result<CdevPin, HwError> {
        self.request(line, role, LineRequestFlags::OUTPUT, u8::from(initial_high))
    }

    /// Request `line` as an input. Bias (pull-up/down) is not set here: use the board's
    /// resistors or its device tree.
    pub fn input(&mut self, line: u32, role: &'static str) -> Result<CdevPin, HwError> {
        self.request(line, role, LineRequestFlags::INPUT, 0)
    }

    /// `line` of this chip and what the kernel says about it (nothing is requested yet).
    fn line(&mut self, line: u32, role: &'static str) -> Result<(Line, LineInfo), HwError> {
        let lines = self.chip.num_lines();
        if line >= lines {
            return Err(HwError::LineOutOfRange {
                chip: self.name.clone(),
                label: self.label.clone(),
                line,
                lines,
            });
        }
        let handle_line = self
            .chip
            .get_line(line)
            .map_err(|e| self.gpio_error(line, role, e.to_string()))?;
        let info = handle_line
            .info()
            .map_err(|e| self.gpio_error(line, role, e.to_string()))?;
        Ok((handle_line, info))
    }

    fn gpio_error(&self, line: u32, role: &'static str, detail: String) -> HwError {
        HwError::Gpio {
            chip: self.name.clone(),
            line,
            role,
            detail,
        }
    }

    fn request(
        &mut self,
        line: u32,
        role: &'static str,
        flags: LineRequestFlags,
        value: u8,
    ) -> Result<CdevPin, HwError> {
        let (handle_line, info) = self.line(line, role)?;
        if info.is_kernel() {
            return Err(HwError::LineBusy {
                chip: self.name.clone(),
                line,
                role,
                consumer: info.consumer().unwrap_or("the kernel").to_owned(),
            });
        }
        let handle = handle_line
            .request(flags, value, &format!("facegate-{role}"))
            .map_err(|e| self.gpio_error(line, role, format!("request failed: {e}")))?;
        let pin = CdevPin::new(handle).map_err(|e| self.gpio_error(line, role, e.to_string()))?;
        tracing::debug!(chip = %self.name, line, role, "GPIO line requested");
        Ok(pin)
    }
}
