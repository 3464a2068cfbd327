//! The camera, GPIO and display checks of `facegate doctor`.

use super::*;

/// Longest wait for a camera's first frame (a V4L2 camera gives up after 5 s without one).
pub(super) const CAMERA_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn cameras_found() -> String {
    let found = camera::v4l2::list_devices();
    if found.is_empty() {
        "No camera found on this machine (no /dev/video* device)".into()
    } else {
        format!(
            "Cameras found: {}",
            found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

pub(super) fn check_camera(cfg: &CameraConfig) -> Check {
    const NAME: &str = "camera";
    let kind = cfg.resolve_kind();
    let auto_note = if cfg.source == SourceKind::Auto {
        match kind {
            SourceKind::Recorded => "camera.source = \"auto\" found no camera, so ",
            _ => "camera.source = \"auto\": ",
        }
    } else {
        ""
    };
    let mut cfg = cfg.clone();
    cfg.source = kind;
    let timeout = CAMERA_TIMEOUT.max(Duration::from_millis(cfg.mjpeg_timeout_ms + 2000));
    match kind {
        SourceKind::Auto | SourceKind::V4l2 => {
            if cfg.device.starts_with('/') && !Path::new(&cfg.device).exists() {
                return Check::problem(
                    NAME,
                    format!(
                        "{} does not exist. Is the camera plugged in? {}",
                        cfg.device,
                        cameras_found()
                    ),
                    "check the camera's cable, or set camera.device to one of the cameras \
                     found (a name such as \"C920\" survives re-plugging, a /dev/videoN path \
                     may not)",
                );
            }
            match camera::probe::first_frame(&cfg, timeout) {
                Ok(f) => Check::ok(
                    NAME,
                    format!(
                        "{auto_note}{}: first frame {}x{} in {} ms",
                        f.source,
                        f.width,
                        f.height,
                        f.took.as_millis()
                    ),
                ),
                Err(e @ CameraError::NoDevice { .. }) => {
                    Check::problem(NAME, format!("{e}. {}", cameras_found()), e.advice())
                }
                Err(e) => camera_problem(&cfg, e),
            }
        }
        SourceKind::Recorded => {
            let dir = match cfg.recorded_dir() {
                Ok(d) => absolute(&d),
                Err(e) => return Check::problem(NAME, e.to_string(), e.advice()),
            };
            let folder = match camera::recorded::check_folder(&dir, 1000) {
                Ok(f) => f,
                Err(e) => return Check::problem(NAME, e.to_string(), e.advice()),
            };
            let first = match camera::probe::first_frame(&cfg, timeout) {
                Ok(f) => f,
                Err(e) => return camera_problem(&cfg, e),
            };
            let images = if folder.checked < folder.images {
                format!(
                    "{} images (first {} checked)",
                    folder.images, folder.checked
                )
            } else {
                format!("{} images", folder.images)
            };
            let message = format!(
                "{auto_note}recorded frames {}: {images}, first frame {}x{} in {} ms",
                dir.display(),
                first.width,
                first.height,
                first.took.as_millis()
            );
            if let Some((file, reason)) = folder.unreadable.first() {
                return Check::warning(
                    NAME,
                    format!(
                        "{message}; {} cannot be read (first: {}: {reason}) and will be \
                         skipped",
                        folder.unreadable.len(),
                        file.display()
                    ),
                    "remove or replace the unreadable files",
                );
            }
            if cfg.recorded_dir.as_os_str().is_empty() && !auto_note.is_empty() {
                return Check::warning(
                    NAME,
                    format!("{message} (the bundled demonstration frames, not a camera)"),
                    "on a door, plug in the camera (or set camera.source = \"v4l2\" or \
                     \"mjpeg\" to have a missing camera reported)",
                );
            }
            Check::ok(NAME, message)
        }
        SourceKind::Mjpeg => match camera::probe::first_frame(&cfg, timeout) {
            Ok(f) => Check::ok(
                NAME,
                format!(
                    "{}: first frame {}x{} in {} ms",
                    f.source,
                    f.width,
                    f.height,
                    f.took.as_millis()
                ),
            ),
            Err(e) => camera_problem(&cfg, e),
        },
    }
}

pub(super) fn camera_problem(cfg: &CameraConfig, e: CameraError) -> Check {
    const NAME: &str = "camera";
    if let CameraError::Device { device, reason } = &e
        && reason.to_lowercase().contains("busy")
    {
        let holders = host::holders(Path::new(device));
        return Check::warning(
            NAME,
            format!(
                "{device} is in use by {}: not checked",
                host::describe_holders(&holders)
            ),
            "a running facegate holds the camera while the door runs; to test the camera, stop \
             it (systemctl stop facegate) and run facegate doctor again",
        );
    }
    let what = if cfg.source == SourceKind::Mjpeg && !e.is_permanent() {
        format!("cannot get a picture from the IP camera: {e}")
    } else {
        e.to_string()
    };
    Check::problem(NAME, what, e.advice())
}

pub(super) const BOARD_PROFILE: &str = "a board profile from /usr/share/facegate/board (board/ in the \
source) has the right chip and lines";

pub(super) fn check_gpio(cfg: &HwConfig) -> Check {
    const NAME: &str = "gpio";
    match cfg.gpio_backend {
        GpioBackend::Memory => match inspect::check_memory_backend(cfg) {
            Ok(_) => Check::warning(
                NAME,
                format!(
                    "hw.gpio_backend = \"memory\": in-memory stand-in pins, no door is \
                     driven; relay {}",
                    inspect::relay_levels(cfg)
                ),
                format!("on the door controller set hw.gpio_backend = \"cdev\"; {BOARD_PROFILE}"),
            ),
            Err(e) => Check::problem(NAME, e.to_string(), "fix that key in the [hw] section"),
        },
        GpioBackend::Cdev => check_cdev(cfg),
        GpioBackend::Rppal => check_rppal(cfg),
    }
}

pub(super) fn check_cdev(cfg: &HwConfig) -> Check {
    const NAME: &str = "gpio";
    let mut chip = match facegate::hw::pins::GpioChip::open(&cfg.gpio_chip) {
        Ok(c) => c,
        Err(facegate::hw::HwError::ChipNotFound { label, .. }) => {
            let found = match facegate::hw::pins::cdev::list_chips() {
                Ok(chips) if chips.is_empty() => "This machine has no GPIO chip at all (no \
                     /dev/gpiochip*): is this the door controller, with its GPIO driver loaded?"
                    .to_string(),
                Ok(chips) => format!("Chips found: {}", chips.join(", ")),
                Err(e) => format!("The chips cannot be listed: {e}"),
            };
            return Check::problem(
                NAME,
                format!("no GPIO chip labelled {label:?}. {found}"),
                format!(
                    "set hw.gpio_chip to the label `gpiodetect` prints for the chip the relay \
                     is wired to; {BOARD_PROFILE}"
                ),
            );
        }
        Err(e) => {
            return Check::problem(
                NAME,
                e.to_string(),
                "run facegate as a user in the gpio group (the packaged service does)",
            );
        }
    };
    let lines = inspect::check_lines(cfg, &mut chip);
    let text = lines
        .iter()
        .map(inspect::LineCheck::describe)
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!(
        "chip {} {:?}: {text}; relay {}",
        chip.name(),
        chip.label(),
        inspect::relay_levels(cfg)
    );
    if lines.iter().any(inspect::LineCheck::is_problem) {
        Check::problem(
            NAME,
            message,
            format!("check the wiring against [hw]; {BOARD_PROFILE}"),
        )
    } else {
        Check::ok(NAME, message)
    }
}

#[cfg(feature = "rpi")]
pub(super) fn check_rppal(cfg: &HwConfig) -> Check {
    match facegate::hw::pins::rpi::RpiGpio::open() {
        Ok(_) => Check::ok(
            "gpio",
            format!(
                "rppal: the Raspberry Pi GPIO opens (lines are not inspected: rppal cannot see \
                 other programs' use); relay {}",
                inspect::relay_levels(cfg)
            ),
        ),
        Err(e) => Check::problem(
            "gpio",
            e.to_string(),
            "run facegate as a user in the gpio group, or use hw.gpio_backend = \"cdev\"",
        ),
    }
}

#[cfg(not(feature = "rpi"))]
pub(super) fn check_rppal(_cfg: &HwConfig) -> Check {
    Check::problem(
        "gpio",
        "hw.gpio_backend = \"rppal\" needs facegate built with `--features rpi`",
        "set hw.gpio_backend = \"cdev\" (it works on a Raspberry Pi too)",
    )
}

pub(super) fn check_display(cfg: &HwConfig) -> Check {
    const NAME: &str = "display";
    if cfg.display == DisplayKind::None {
        return Check::skipped(NAME, "no status display configured (hw.display = \"none\")");
    }
    match inspect::check_display(cfg) {
        Ok(found) => Check::ok(NAME, found),
        Err(e) => {
            let fix = match cfg.display {
                DisplayKind::Framebuffer => {
                    "check that the screen is connected and its driver loaded (`ls /dev/fb*`), \
                     or fix hw.framebuffer"
                }
                DisplayKind::Ssd1306 => {
                    "check the display's wiring (SDA, SCL, VCC, GND), that I2C is enabled \
                     (Raspberry Pi: dtparam=i2c_arm=on), and hw.i2c_bus and hw.i2c_address \
                     (0x3C, or 0x3D with the address jumper moved)"
                }
                DisplayKind::Png | DisplayKind::None => {
                    "fix hw.png_path or the folder's permissions"
                }
            };
            Check::problem(NAME, e.to_string(), fix)
        }
    }
}

/// The infrared camera of `liveness.ir` (`[camera.ir]`): no line while the check is off, else
/// the same checks as the colour camera (a first frame within the time limit).
pub(super) fn check_ir_camera(config: &Config) -> Option<Check> {
    const NAME: &str = "ir camera";
    let mode = config.liveness.ir;
    if mode == facegate::vision::liveness::Mode::Off {
        return None;
    }
    let ir = &config.camera.ir;
    if let Err(e) = ir.check_in_use() {
        return Some(Check::problem(
            NAME,
            e,
            "fix that key in the [camera.ir] section",
        ));
    }
    let mut c = check_camera(&ir.camera_config(&config.camera));
    c.check = NAME;
    c.message = format!(
        "liveness.ir = \"{}\": infrared {}",
        mode.as_str(),
        c.message
    );
    c.fix = c.fix.map(|f| f.replace("camera.", "camera.ir."));
    if c.status == Status::Problem && mode == facegate::vision::liveness::Mode::Enforce {
        c.message
            .push_str(" (the door refuses every face as not live until the infrared camera works)");
    }
    Some(c)
}
