//! GPIO lines through `rppal` (Raspberry Pi only; BCM GPIO numbers). Built with `--features rpi`.

use rppal::gpio::{Gpio, InputPin, OutputPin};

use crate::hw::HwError;

/// The Raspberry Pi's GPIO block.
#[derive(Debug)]
pub struct RpiGpio {
    gpio: Gpio,
}

impl RpiGpio {
    pub fn open() -> Result<RpiGpio, HwError> {
        let gpio = Gpio::new().map_err(|e| HwError::Gpio {
            chip: "rppal".into(),
            line: 0,
            role: "gpio",
            detail: format!("cannot open the Raspberry Pi GPIO: {e}"),
        })?;
        Ok(RpiGpio { gpio })
    }

    fn pin(&self, line: u32, role: &'static str) -> Result<rppal::gpio::Pin, HwError> {
        let bcm = u8::try_from(line).map_err(|_| HwError::LineOutOfRange {
            chip: "rppal".into(),
            label: "bcm".into(),
            line,
            lines: 256,
        })?;
        self.gpio.get(bcm).map_err(|e| match e {
            rppal::gpio::Error::PinUsed(_) => HwError::LineBusy {
                chip: "rppal".into(),
                line,
                role,
                consumer: "another rppal user".into(),
            },
            e => HwError::Gpio {
                chip: "rppal".into(),
                line,
                role,
                detail: e.to_string(),
            },
        })
    }

    pub fn output(
        &self,
        line: u32,
        role: &'static str,
        initial_high: bool,
    ) -> Result<OutputPin, HwError> {
        let pin = self.pin(line, role)?;
        Ok(if initial_high {
            pin.into_output_high()
        } else {
            pin.into_output_low()
        })
    }

    /// An input with the internal pull towards the idle level: pull-up when the active level
    /// is low, pull-down when it is high.
    pub fn input(
        &self,
        line: u32,
        role: &'static str,
        active_high: bool,
    ) -> Result<InputPin, HwError> {
        let pin = self.pin(line, role)?;
        Ok(if active_high {
            pin.into_input_pulldown()
        } else {
            pin.into_input_pullup()
        })
    }
}
