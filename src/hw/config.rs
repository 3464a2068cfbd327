//! The `[hw]` section of the configuration: which GPIO lines drive the relay and read the door,
//! which status display is fitted, and the optional Wiegand output. [`DEFAULT_TOML`] documents
//! every key with its default.

use std::path::PathBuf;

use serde::Deserialize;

/// How the GPIO lines are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpioBackend {
    /// The Linux GPIO character device (`/dev/gpiochip*`): any board.
    Cdev,
    /// rppal (Raspberry Pi only, BCM numbering); needs a build with `--features rpi`.
    Rppal,
    /// No hardware: in-memory pins (see [`crate::hw::Hardware::memory`]).
    Memory,
}

/// The behaviour of the lock when its power is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockType {
    /// Locked when unpowered (electric strike, motor lock): the relay is energised to unlock.
    FailSecure,
    /// Unlocked when unpowered (magnetic lock): the relay is energised to keep the door locked
    /// and released to unlock.
    FailSafe,
}

/// An electrical level of a GPIO line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Low,
    High,
}

impl Level {
    pub fn is_high(self) -> bool {
        self == Level::High
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisplayKind {
    None,
    Ssd1306,
    Framebuffer,
    Png,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HwConfig {
    pub gpio_backend: GpioBackend,
    pub gpio_chip: String,
    pub relay_line: u32,
    pub relay_active_low: bool,
    pub lock_type: LockType,
    pub unlock_ms: u32,
    pub door_contact_line: Option<u32>,
    pub door_closed_level: Level,
    pub exit_button_line: Option<u32>,
    pub exit_pressed_level: Level,
    pub debounce_ms: u32,
    pub display: DisplayKind,
    pub i2c_bus: PathBuf,
    pub i2c_address: u8,
    pub framebuffer: PathBuf,
    pub png_path: PathBuf,
    pub wiegand_enabled: bool,
    pub wiegand_format: u8,
    pub wiegand_d0_line: u32,
    pub wiegand_d1_line: u32,
    pub wiegand_invert: bool,
    pub wiegand_pulse_us: u32,
    pub wiegand_interval_us: u32,
}

impl Default for HwConfig {
    fn default() -> Self {
        HwConfig {
            gpio_backend: GpioBackend::Cdev,
            gpio_chip: "pinctrl-bcm2711".into(),
            relay_line: 17,
            relay_active_low: false,
            lock_type: LockType::FailSecure,
            unlock_ms: 3000,
            door_contact_line: None,
            door_closed_level: Level::Low,
            exit_button_line: None,
            exit_pressed_level: Level::Low,
            debounce_ms: 50,
            display: DisplayKind::None,
            i2c_bus: "/dev/i2c-1".into(),
            i2c_address: 0x3C,
            framebuffer: "/dev/fb0".into(),
            png_path: "facegate-display.png".into(),
            wiegand_enabled: false,
            wiegand_format: 26,
            wiegand_d0_line: 23,
            wiegand_d1_line: 24,
            wiegand_invert: false,
            wiegand_pulse_us: 50,
            wiegand_interval_us: 2000,
        }
    }
}

/// The documented default `[hw]` section; every key shows its default value.
pub const DEFAULT_TOML: &str = r#"[hw]
# How GPIO lines are reached: "cdev" (the Linux GPIO character device /dev/gpiochip*: Raspberry
# Pi, Jetson, any board), "rppal" (Raspberry Pi only, BCM numbering; needs a build with
# `--features rpi`) or "memory" (no hardware: in-memory pins and a PNG display, for development).
gpio_backend = "cdev"
# Label of the GPIO chip holding the lines below, as `gpiodetect` prints it (Raspberry Pi 4:
# "pinctrl-bcm2711", Pi 5: "pinctrl-rp1", Pi 3: "pinctrl-bcm2835", Jetson Orin: "tegra234-gpio").
# A device name such as "gpiochip0" is accepted too.
gpio_chip = "pinctrl-bcm2711"

# Line driving the door relay module.
relay_line = 17
# true when the relay is energised by a low line (many opto-isolated relay boards).
relay_active_low = false
# "fail_secure": the lock is locked when unpowered (electric strike, motor lock); the relay is
# energised to unlock. "fail_safe": the lock is open when unpowered (magnetic lock); the relay is
# energised to keep the door locked and released to unlock.
lock_type = "fail_secure"
# How long a granted face unlocks the door, milliseconds (100..60000).
unlock_ms = 3000

# Door contact (reed switch) line; unset: no door contact wired.
# door_contact_line = 27
# Line level that means the door is closed: "low" (switch to ground, pull-up) or "high".
door_closed_level = "low"
# Request-to-exit button line; unset: no exit button wired.
# exit_button_line = 22
# Line level while the exit button is pressed: "low" (button to ground, pull-up) or "high".
exit_pressed_level = "low"
# An input must keep a new level this long before it counts, milliseconds (0..1000).
debounce_ms = 50

# Status display: "none", "ssd1306" (128x64 OLED on I2C), "framebuffer" (Linux framebuffer:
# HDMI or an SPI LCD) or "png" (rewrites png_path on every change, for development).
display = "none"
# I2C bus device and address of the SSD1306 (0x3C on most modules, 0x3D with the jumper moved).
i2c_bus = "/dev/i2c-1"
i2c_address = 0x3C
# Framebuffer device (16, 24 or 32 bits per pixel).
framebuffer = "/dev/fb0"
# File written by the "png" display (128x64, one image pixel per display pixel).
png_path = "facegate-display.png"

# Wiegand output of the person's card number, to sit in front of an existing access panel.
wiegand_enabled = false
# 26 (8-bit facility code, 16-bit card number) or 34 (16-bit facility code, 16-bit card number).
wiegand_format = 26
# Lines for DATA0 and DATA1.
wiegand_d0_line = 23
wiegand_d1_line = 24
# true when D0/D1 go through an inverting transistor stage (line high pulls the wire low).
wiegand_invert = false
# Width of each bit's pulse (10..500) and the period from one pulse to the next (200..50000),
# microseconds.
wiegand_pulse_us = 50
wiegand_interval_us = 2000
"#;

impl HwConfig {
    /// Range and consistency checks that serde cannot express. Messages name the key as
    /// `hw.<key>`.
    pub fn check(&self) -> Result<(), String> {
        if self.gpio_backend == GpioBackend::Cdev && self.gpio_chip.trim().is_empty() {
            return Err("hw.gpio_chip is empty: name the GPIO chip by its label".into());
        }
        if !(100..=60_000).contains(&self.unlock_ms) {
            return Err(format!(
                "hw.unlock_ms = {} is outside 100..60000",
                self.unlock_ms
            ));
        }
        if self.debounce_ms > 1000 {
            return Err(format!(
                "hw.debounce_ms = {} is outside 0..1000",
                self.debounce_ms
            ));
        }
        if !(0x03..=0x77).contains(&self.i2c_address) {
            return Err(format!(
                "hw.i2c_address = {:#04x} is not a 7-bit device address (0x03..0x77)",
                self.i2c_address
            ));
        }
        let path_set = |key: &str, p: &PathBuf| {
            if p.as_os_str().is_empty() {
                Err(format!("hw.{key} is empty but hw.display needs it"))
            } else {
                Ok(())
            }
        };
        match self.display {
            DisplayKind::None => {}
            DisplayKind::Ssd1306 => path_set("i2c_bus", &self.i2c_bus)?,
            DisplayKind::Framebuffer => path_set("framebuffer", &self.framebuffer)?,
            DisplayKind::Png => path_set("png_path", &self.png_path)?,
        }
        if self.wiegand_enabled {
            if self.wiegand_format != 26 && self.wiegand_format != 34 {
                return Err(format!(
                    "hw.wiegand_format = {} is not supported (26 or 34)",
                    self.wiegand_format
                ));
            }
            if !(10..=500).contains(&self.wiegand_pulse_us) {
                return Err(format!(
                    "hw.wiegand_pulse_us = {} is outside 10..500",
                    self.wiegand_pulse_us
                ));
            }
            if !(200..=50_000).contains(&self.wiegand_interval_us) {
                return Err(format!(
                    "hw.wiegand_interval_us = {} is outside 200..50000",
                    self.wiegand_interval_us
                ));
            }
            if self.wiegand_interval_us < 2 * self.wiegand_pulse_us {
                return Err(format!(
                    "hw.wiegand_interval_us = {} must be at least twice hw.wiegand_pulse_us = {}",
                    self.wiegand_interval_us, self.wiegand_pulse_us
                ));
            }
        }
        let lines = self.lines();
        for (i, (key, line)) in lines.iter().enumerate() {
            if let Some((other, _)) = lines[..i].iter().find(|(_, l)| l == line) {
                return Err(format!(
                    "hw.{key} and hw.{other} are both line {line}: each line has one job"
                ));
            }
        }
        Ok(())
    }

    /// The GPIO lines in use, by key.
    pub(crate) fn lines(&self) -> Vec<(&'static str, u32)> {
        let mut lines = vec![("relay_line", self.relay_line)];
        if let Some(l) = self.door_contact_line {
            lines.push(("door_contact_line", l));
        }
        if let Some(l) = self.exit_button_line {
            lines.push(("exit_button_line", l));
        }
        if self.wiegand_enabled {
            lines.push(("wiegand_d0_line", self.wiegand_d0_line));
            lines.push(("wiegand_d1_line", self.wiegand_d1_line));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        hw: HwConfig,
    }

    fn parse(text: &str) -> HwConfig {
        toml::from_str::<Section>(text).unwrap().hw
    }

    #[test]
    fn default_text_parses_to_default_config() {
        let c = parse(DEFAULT_TOML);
        assert_eq!(c, HwConfig::default());
        c.check().unwrap();
    }

    #[test]
    fn every_key_is_in_the_default_text() {
        // Uncomment the optional keys: then every field must appear, and the text must still
        // parse (so no key is documented under a wrong name).
        let text = DEFAULT_TOML
            .replace("# door_contact_line", "door_contact_line")
            .replace("# exit_button_line", "exit_button_line");
        let c = parse(&text);
        assert_eq!(c.door_contact_line, Some(27));
        assert_eq!(c.exit_button_line, Some(22));
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert_eq!(keys.len(), 23, "{keys:?}");
        c.check().unwrap();
    }

    #[test]
    fn unknown_key_and_bad_enum_are_refused() {
        let e = toml::from_str::<Section>("[hw]\nrelay_pin = 3\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("relay_pin"), "{e}");
        let e = toml::from_str::<Section>("[hw]\nlock_type = \"failsecure\"\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("fail_secure"), "{e}");
    }

    #[test]
    fn checks_refuse_out_of_range_and_shared_lines() {
        let bad = |text: &str, needle: &str| {
            let e = parse(text).check().unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        };
        bad("[hw]\nunlock_ms = 50\n", "hw.unlock_ms");
        bad("[hw]\ndebounce_ms = 5000\n", "hw.debounce_ms");
        bad("[hw]\ni2c_address = 0x80\n", "hw.i2c_address");
        bad("[hw]\ngpio_chip = \"\"\n", "hw.gpio_chip");
        bad(
            "[hw]\ndisplay = \"png\"\npng_path = \"\"\n",
            "hw.png_path is empty",
        );
        bad(
            "[hw]\nwiegand_enabled = true\nwiegand_format = 37\n",
            "wiegand_format",
        );
        bad(
            "[hw]\nwiegand_enabled = true\nwiegand_pulse_us = 200\nwiegand_interval_us = 300\n",
            "twice",
        );
        bad(
            "[hw]\ndoor_contact_line = 17\n",
            "hw.door_contact_line and hw.relay_line",
        );
        bad(
            "[hw]\nwiegand_enabled = true\nwiegand_d1_line = 23\n",
            "hw.wiegand_d1_line and hw.wiegand_d0_line",
        );
        // Wiegand lines only count when Wiegand is on.
        parse("[hw]\nwiegand_d0_line = 17\n").check().unwrap();
        // A hex address parses.
        assert_eq!(parse("[hw]\ni2c_address = 0x3D\n").i2c_address, 0x3D);
    }
}
