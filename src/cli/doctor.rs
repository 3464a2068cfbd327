//! `facegate doctor`: check an installation with the same library code and configuration
//! `facegate run` uses, and say what is wrong in words a building technician understands.
//!
//! One line per check: `OK`, `WARNING` (works, but look at it), `PROBLEM` (the door will not
//! work as configured; the line says what to do) or `SKIPPED` (not configured). Exit code 1
//! when any check is a PROBLEM. Nothing is changed: no GPIO line is requested (the door is
//! never unlocked), no display is drawn on, no gallery or collection is created.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use facegate::camera::{self, CameraConfig, CameraError, SourceKind};
use facegate::config::Config;
use facegate::gallery::{Cache, GalleryError, ModelTag};
use facegate::hw::config::{DisplayKind, GpioBackend, HwConfig};
use facegate::hw::host::{self, human_bytes};
use facegate::hw::inspect;
use facegate::vision::model::{self, ModelCard, ModelKind};
use facegate::vision::{Models, selftest};
use serde::Serialize;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// One JSON object per check and line (`check`, `status`, `message`, `fix`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Problem,
    Skipped,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Problem => "PROBLEM",
            Status::Skipped => "SKIPPED",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (PROBLEM and WARNING lines).
    pub fix: Option<String>,
}

impl Check {
    fn new(check: &'static str, status: Status, message: impl Into<String>) -> Check {
        Check {
            check,
            status,
            message: message.into(),
            fix: None,
        }
    }

    fn ok(check: &'static str, message: impl Into<String>) -> Check {
        Check::new(check, Status::Ok, message)
    }

    fn skipped(check: &'static str, message: impl Into<String>) -> Check {
        Check::new(check, Status::Skipped, message)
    }

    fn warning(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(check, Status::Warning, message).with_fix(fix)
    }

    fn problem(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(check, Status::Problem, message).with_fix(fix)
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Check {
        let fix = fix.into();
        self.fix = (!fix.is_empty()).then_some(fix);
        self
    }

    /// The text line: status and check name in columns, then the message and what to do.
    pub fn line(&self) -> String {
        let mut text = self.message.trim_end_matches('.').to_string();
        if let Some(fix) = &self.fix {
            text.push_str(if text.ends_with(['?', '!']) {
                " "
            } else {
                ". "
            });
            text.push_str(&capitalised(fix));
            if !fix.ends_with(['.', '?', '!', ')']) {
                text.push('.');
            }
        }
        format!("{:<9}{:<12}{text}", self.status.word(), self.check)
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Whether any check is a PROBLEM (the exit code is then 1).
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Problem)
}

fn exit_code(checks: &[Check]) -> ExitCode {
    if failed(checks) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints each check as soon as it is made.
struct Report {
    json: bool,
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, c: Check) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(&c)?);
        } else {
            println!("{}", c.line());
        }
        self.checks.push(c);
        Ok(())
    }
}

pub fn run(config_arg: Option<&Path>, args: DoctorArgs) -> Result<ExitCode> {
    let mut report = Report {
        json: args.json,
        checks: Vec::new(),
    };
    let config = match check_config(config_arg) {
        (c, Some(config)) => {
            report.add(c)?;
            config
        }
        (c, None) => {
            report.add(c)?;
            if !args.json {
                println!("(the other checks need a configuration that loads)");
            }
            return Ok(exit_code(&report.checks));
        }
    };
    let gallery_path = absolute(&config.gallery.path());
    let recorded = Cache::recorded_model(&gallery_path);
    let (c, model) = check_models(&config, recorded.as_ref().ok().and_then(Option::as_ref));
    report.add(c)?;
    report.add(check_camera(&config.camera))?;
    report.add(check_gpio(&config.hw))?;
    report.add(check_display(&config.hw))?;
    let (c, local_templates) = check_gallery(&config, &gallery_path, recorded, model.as_ref());
    report.add(c)?;
    report.add(check_milvus(&config, model.as_ref(), local_templates)?)?;
    report.add(check_recognition(&config, local_templates))?;
    report.add(check_audit(&config, &gallery_path))?;
    report.add(check_disk(&gallery_path))?;
    report.add(check_clock(facegate::gallery::now_ms()))?;
    Ok(exit_code(&report.checks))
}

/// `path` made absolute (against the working directory) for messages: a technician reading
/// "facegate-data/gallery" cannot tell where that is.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn check_config(arg: Option<&Path>) -> (Check, Option<Config>) {
    let file = crate::config_file(arg);
    match &file {
        None => (
            Check::ok(
                "config",
                format!(
                    "built-in defaults (there is no {}; `facegate init` writes one)",
                    crate::SYSTEM_CONFIG
                ),
            ),
            Some(Config::default()),
        ),
        Some(path) => match Config::load(path) {
            Ok(c) => (
                Check::ok("config", format!("{} loads", absolute(path).display())),
                Some(c),
            ),
            Err(e) => (
                Check::problem(
                    "config",
                    e.to_string(),
                    "fix the file (every key and its meaning: /etc/facegate/config.toml as \
                     installed, or `facegate init --config NEW_FILE` writes the documented \
                     default), then run facegate doctor again",
                ),
                None,
            ),
        },
    }
}

fn card_text(card: &ModelCard) -> String {
    let size = std::fs::metadata(card.onnx_path())
        .map(|m| human_bytes(m.len()))
        .unwrap_or_else(|_| "?".into());
    format!("{} ({size})", card.name)
}

const REINSTALL_MODELS: &str = "reinstall the facegate package (it puts the models in \
/usr/share/facegate/models), or copy the models/ folder of the release there";

/// The models check; also returns the configured embedder's tag (from its card) for the
/// gallery and Milvus checks, when the card was found.
fn check_models(config: &Config, recorded: Option<&ModelTag>) -> (Check, Option<ModelTag>) {
    const NAME: &str = "models";
    let v = &config.vision;
    let Some(dir) = v.models_dir().map(|d| absolute(&d)) else {
        return (
            Check::problem(
                NAME,
                "no models folder found ($FACEGATE_MODELS, ./models, \
                 <binary>/../share/facegate/models and /usr/share/facegate/models hold no \
                 model card)",
                format!("{REINSTALL_MODELS}, or set vision.models_dir"),
            ),
            None,
        );
    };
    if !dir.is_dir() {
        return (
            Check::problem(
                NAME,
                format!(
                    "vision.models_dir = {:?} is not a folder",
                    dir.display().to_string()
                ),
                format!("fix vision.models_dir, or {REINSTALL_MODELS}"),
            ),
            None,
        );
    }
    let detector = model::find_card(&dir, &v.detector, ModelKind::Detector);
    let embedder = match v.embedder_name() {
        Some(name) => model::find_card(&dir, name, ModelKind::Embedder),
        None => model::default_embedder(&dir),
    };
    let (detector, embedder) = match (detector, embedder) {
        (Ok(d), Ok(e)) => (d, e),
        (Err(e), _) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "set vision.detector to one of the detectors available",
                ),
                None,
            );
        }
        (_, Err(e)) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "set vision.embedder to one of the embedders available (or \"auto\")",
                ),
                None,
            );
        }
    };
    let dim = embedder.embedder.as_ref().map_or(0, |e| e.dim);
    let tag = ModelTag::new(&embedder.name, dim);
    for card in [&detector, &embedder] {
        let onnx = card.onnx_path();
        if !onnx.is_file() {
            return (
                Check::problem(
                    NAME,
                    format!(
                        "model file {} is missing (its card {} names it)",
                        onnx.display(),
                        card.path.display()
                    ),
                    REINSTALL_MODELS,
                ),
                Some(tag),
            );
        }
    }
    let start = Instant::now();
    let models = match Models::load(&dir, &detector.name, Some(&embedder.name)) {
        Ok(m) => m,
        Err(e) => {
            return (
                Check::problem(NAME, e.to_string(), REINSTALL_MODELS),
                Some(tag),
            );
        }
    };
    let loaded = start.elapsed();
    let test = match selftest::self_test(&models, v.params()) {
        Ok(t) => t,
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    format!("the models load but do not work: {e}"),
                    format!(
                        "check the [vision] settings (detect_threshold, min_face_px); if they \
                         are the defaults, {REINSTALL_MODELS}"
                    ),
                ),
                Some(tag),
            );
        }
    };
    let gallery = match recorded {
        Some(r) if *r == tag => ", the same model as the gallery".to_string(),
        Some(r) => format!(
            "; the gallery was made with {} ({}-d): see the gallery line",
            r.name, r.dim
        ),
        None => String::new(),
    };
    (
        Check::ok(
            NAME,
            format!(
                "{} and {} in {}: loaded in {} ms; built-in test picture: {} face, {}-d template \
                 in {} ms{gallery}",
                card_text(&detector),
                card_text(&embedder),
                dir.display(),
                loaded.as_millis(),
                test.faces,
                test.dim,
                test.took.as_millis()
            ),
        ),
        Some(tag),
    )
}

/// The operating point: target FPIR, gallery size, the threshold derived for a door visit.
fn check_recognition(config: &Config, templates: Option<usize>) -> Check {
    const NAME: &str = "recognition";
    let Some(dir) = config.vision.models_dir() else {
        return Check::skipped(NAME, "not checked: no models folder (see models)");
    };
    let card = match config.vision.embedder_name() {
        Some(name) => model::find_card(&dir, name, ModelKind::Embedder),
        None => model::default_embedder(&dir),
    };
    let Ok(card) = card else {
        return Check::skipped(NAME, "not checked: the embedder is unknown (see models)");
    };
    let op = match config
        .recognition
        .operating_point(&card, facegate::access::calibration::ProbeKind::Visit)
    {
        Ok(op) => op,
        Err(e) => {
            return Check::problem(
                NAME,
                e.to_string(),
                "set recognition.threshold, or use the default embedder",
            );
        }
    };
    let n = templates.unwrap_or(0);
    let s = op.state_for(n);
    let text = match (s.target_fpir, s.expected_fpir) {
        (Some(target), Some(expected)) => format!(
            "target FPIR {target:e} per visit; gallery of {n} template{}: threshold {:.4}              (expected FPIR {expected:.1e}), margin {:.2}; rises with the gallery (1,000              templates: {:.4})",
            if n == 1 { "" } else { "s" },
            s.threshold,
            s.margin,
            op.state_for(1000).threshold
        ),
        _ => format!(
            "fixed threshold {:.4} (recognition.threshold), margin {:.2}, gallery of {n}              templates: no FPIR is promised",
            s.threshold, s.margin
        ),
    };
    if s.target_fpir.is_none() {
        Check::warning(
            NAME,
            text,
            "remove recognition.threshold and choose recognition.security instead, so the              threshold follows the gallery's size",
        )
    } else {
        Check::ok(NAME, text)
    }
}

/// Longest wait for a camera's first frame (a V4L2 camera gives up after 5 s without one).
const CAMERA_TIMEOUT: Duration = Duration::from_secs(10);

fn cameras_found() -> String {
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

fn check_camera(cfg: &CameraConfig) -> Check {
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

fn camera_problem(cfg: &CameraConfig, e: CameraError) -> Check {
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

const BOARD_PROFILE: &str = "a board profile from /usr/share/facegate/board (board/ in the \
source) has the right chip and lines";

fn check_gpio(cfg: &HwConfig) -> Check {
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

fn check_cdev(cfg: &HwConfig) -> Check {
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
fn check_rppal(cfg: &HwConfig) -> Check {
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
fn check_rppal(_cfg: &HwConfig) -> Check {
    Check::problem(
        "gpio",
        "hw.gpio_backend = \"rppal\" needs facegate built with `--features rpi`",
        "set hw.gpio_backend = \"cdev\" (it works on a Raspberry Pi too)",
    )
}

fn check_display(cfg: &HwConfig) -> Check {
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

const ENROLL: &str = "enroll people with `facegate enroll FOLDER` or `facegate gallery add NAME \
PHOTO`";

/// The gallery check; also returns the local template count for the Milvus line.
fn check_gallery(
    config: &Config,
    path: &Path,
    recorded: Result<Option<ModelTag>, GalleryError>,
    model: Option<&ModelTag>,
) -> (Check, Option<usize>) {
    const NAME: &str = "gallery";
    let recorded = match recorded {
        Ok(r) => r,
        Err(GalleryError::InUse { holders, .. }) => {
            return (
                Check::warning(
                    NAME,
                    format!(
                        "the gallery {} is in use by another program, most likely a running \
                         facegate: {holders}; not checked",
                        path.display()
                    ),
                    "this is normal while the door runs; to check the gallery, stop it \
                     (systemctl stop facegate) and run facegate doctor again",
                ),
                None,
            );
        }
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "restore the gallery from a backup, or move it away and enroll again \
                     (facegate gallery sync refills it from Milvus when one is configured)",
                ),
                None,
            );
        }
    };
    let Some(model) = model else {
        return (
            Check::skipped(NAME, "not checked: the embedder is unknown (see models)"),
            None,
        );
    };
    if !path.join("db").exists() {
        let writable = host::nearest_existing(path)
            .ok_or_else(|| format!("no folder of {} exists", path.display()))
            .and_then(|d| host::check_writable_dir(&d));
        return match writable {
            Err(e) => (
                Check::problem(
                    NAME,
                    format!(
                        "no gallery at {} and it cannot be created: {e}",
                        path.display()
                    ),
                    "fix gallery.path, or the folder's owner (the packaged service runs as \
                     user facegate and keeps its data in /var/lib/facegate)",
                ),
                None,
            ),
            Ok(()) => (
                Check::warning(
                    NAME,
                    format!(
                        "no gallery yet at {}: it is created when facegate first starts, and \
                         nobody is enrolled",
                        path.display()
                    ),
                    ENROLL,
                ),
                Some(0),
            ),
        };
    }
    if let Some(r) = &recorded
        && r != model
    {
        let e = GalleryError::ModelMismatch {
            path: path.display().to_string(),
            found: r.name.clone(),
            found_dim: r.dim,
            expected: model.name.clone(),
            expected_dim: model.dim,
        };
        return (
            Check::problem(
                NAME,
                e.to_string(),
                format!("e.g. set vision.embedder = {:?}", r.name),
            ),
            None,
        );
    }
    let key = match facegate::gallery::load_device_key(&config.gallery) {
        Ok(k) => k,
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "run `facegate init` (or `facegate key create`), or set gallery.key_file",
                ),
                None,
            );
        }
    };
    match facegate::gallery::migrate::is_plaintext(path) {
        Ok(true) => {
            return (
                Check::warning(
                    NAME,
                    format!(
                        "{}: plaintext records (made before sealing); the next facegate run or \
                         serve converts them",
                        path.display()
                    ),
                    "start the door once (systemctl restart facegate)",
                ),
                None,
            );
        }
        Ok(false) => {}
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "see the message; then run doctor again",
                ),
                None,
            );
        }
    }
    // Not Cache::open: doctor converts nothing.
    let cache = match Cache::open_sealed(path, model, &key) {
        Ok(c) => c,
        Err(e) => {
            return (
                Check::problem(
                    NAME,
                    e.to_string(),
                    "see the message; then run doctor again",
                ),
                None,
            );
        }
    };
    let persons = cache.person_count();
    let templates = cache.template_count();
    let outbox = cache.outbox_len();
    let message = format!(
        "{}: {persons} person{}, {templates} face template{} ({}, {}-d), {}",
        path.display(),
        if persons == 1 { "" } else { "s" },
        if templates == 1 { "" } else { "s" },
        model.name,
        model.dim,
        if outbox == 0 {
            "no change waiting for the central gallery".to_string()
        } else {
            format!("{outbox} change(s) waiting for the central gallery")
        }
    );
    let check = if persons == 0 {
        Check::warning(
            NAME,
            format!("{message}; nobody is enrolled, so the door admits nobody by face"),
            ENROLL,
        )
    } else if outbox > 0 && config.milvus.enabled() {
        Check::warning(
            NAME,
            message,
            "run `facegate gallery sync` once Milvus is reachable (the door does it every \
             milvus.sync_interval_s)",
        )
    } else {
        Check::ok(NAME, message)
    };
    (check, Some(templates))
}

/// Longest wait for the central gallery.
const MILVUS_TIMEOUT: Duration = Duration::from_secs(3);

fn check_milvus(
    config: &Config,
    model: Option<&ModelTag>,
    local_templates: Option<usize>,
) -> Result<Check> {
    const NAME: &str = "milvus";
    let m = &config.milvus;
    if !m.enabled() {
        return Ok(Check::skipped(
            NAME,
            "no central gallery configured ([milvus] url is empty): this door works from its \
             own gallery only",
        ));
    }
    let Some(model) = model else {
        return Ok(Check::skipped(
            NAME,
            "not checked: the embedder is unknown (see models)",
        ));
    };
    let store = facegate::gallery::milvus::MilvusStore::new(m, model);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let start = Instant::now();
    // Each call has the budget; the whole gets one second more, for the calls after connecting.
    let found = rt.block_on(async {
        tokio::time::timeout(
            MILVUS_TIMEOUT + Duration::from_secs(1),
            store.inspect(MILVUS_TIMEOUT),
        )
        .await
    });
    let offline = "the door keeps deciding from its own gallery and queues enrollments and \
                   removals until Milvus is back";
    let report = match found {
        Err(_) => {
            return Ok(Check::warning(
                NAME,
                format!(
                    "Milvus at {} did not answer (gave up after {} ms): {offline}",
                    m.url,
                    start.elapsed().as_millis()
                ),
                "check the network and that Milvus runs, and milvus.url",
            ));
        }
        Ok(Err(e)) => {
            return Ok(Check::warning(
                NAME,
                format!(
                    "cannot reach Milvus at {} (gave up after {} ms): {e}; {offline}",
                    m.url,
                    start.elapsed().as_millis()
                ),
                "check the network and that Milvus runs, and milvus.url and milvus.token",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let took = start.elapsed().as_millis();
    if !report.templates_exists {
        return Ok(Check::warning(
            NAME,
            format!(
                "Milvus at {} answers ({took} ms) but has no collection {} yet",
                m.url, report.templates_collection
            ),
            "it is created when the door or `facegate gallery sync` first connects: run \
             `facegate gallery sync`",
        ));
    }
    let local = local_templates
        .map(|n| format!("; this door's gallery holds {n}"))
        .unwrap_or_default();
    Ok(match report.templates {
        Some(Ok(n)) => Check::ok(
            NAME,
            format!(
                "Milvus at {} answers ({took} ms): collection {} holds {n} face template{}{local}",
                m.url,
                report.templates_collection,
                if n == 1 { "" } else { "s" }
            ),
        ),
        Some(Err(e)) => Check::warning(
            NAME,
            format!(
                "Milvus at {} answers ({took} ms) but the templates in {} cannot be counted: {e}",
                m.url, report.templates_collection
            ),
            "look at Milvus' log; the door loads the collection when it connects",
        ),
        None => Check::ok(
            NAME,
            format!("Milvus at {} answers ({took} ms){local}", m.url),
        ),
    })
}

fn check_audit(config: &Config, gallery: &Path) -> Check {
    const NAME: &str = "audit";
    let path = config.api.audit_path(gallery);
    let fix = "fix api.audit_path, or the folder's owner (the packaged service runs as user \
               facegate)";
    if path.exists() {
        if !path.is_dir() {
            return Check::problem(
                NAME,
                format!("the audit log {} is not a folder", path.display()),
                fix,
            );
        }
        return match host::check_writable_dir(&path) {
            Ok(()) => Check::ok(NAME, format!("{} is writable", path.display())),
            Err(e) => Check::problem(NAME, format!("the audit log {e}"), fix),
        };
    }
    let parent: PathBuf = match host::nearest_existing(&path) {
        Some(p) => p,
        None => {
            return Check::problem(NAME, format!("no folder of {} exists", path.display()), fix);
        }
    };
    match host::check_writable_dir(&parent) {
        Ok(()) => Check::ok(
            NAME,
            format!(
                "{} does not exist yet; it is created at the first event ({} is writable)",
                path.display(),
                parent.display()
            ),
        ),
        Err(e) => Check::problem(
            NAME,
            format!("the audit log {} cannot be created: {e}", path.display()),
            fix,
        ),
    }
}

fn check_disk(gallery: &Path) -> Check {
    const NAME: &str = "disk";
    let Some(dir) = host::nearest_existing(gallery) else {
        return Check::skipped(NAME, format!("no folder of {} exists", gallery.display()));
    };
    match host::disk_space(&dir) {
        Err(e) => Check::warning(NAME, format!("free space unknown: {e}"), ""),
        Ok((free, total)) => {
            let message = format!(
                "{} free of {} on the disk holding {}",
                human_bytes(free),
                human_bytes(total),
                dir.display()
            );
            match host::judge_free_space(free) {
                Ok(()) => Check::ok(NAME, message),
                Err(full) => {
                    let status = if full {
                        Status::Problem
                    } else {
                        Status::Warning
                    };
                    Check::new(
                        NAME,
                        status,
                        format!(
                            "{message}: under {}",
                            human_bytes(if full {
                                host::FULL_DISK_BYTES
                            } else {
                                host::LOW_DISK_BYTES
                            })
                        ),
                    )
                    .with_fix(
                        "free some space (old logs: journalctl --vacuum-size=100M), or lower \
                         api.audit_max_events",
                    )
                }
            }
        }
    }
}

fn check_clock(now_ms: i64) -> Check {
    const NAME: &str = "clock";
    let (y, m, d) = facegate::access::rules::utc_date(now_ms);
    match facegate::access::rules::check_clock(now_ms) {
        Ok(()) => Check::ok(NAME, format!("{y:04}-{m:02}-{d:02} (UTC)")),
        Err(shown) => Check::warning(
            NAME,
            format!(
                "the system clock says {shown}: it is not set. Validity windows and weekly \
                 schedules are judged against this date, and audit events get it"
            ),
            "check network time (`timedatectl`: \"System clock synchronized: yes\"); a \
             Raspberry Pi has no battery clock and needs the network, or an RTC module",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_columns_and_end_with_what_to_do() {
        let c = Check::problem(
            "camera",
            "/dev/video2 does not exist. Is the camera plugged in? Cameras found: none",
            "check the camera's cable",
        );
        assert_eq!(
            c.line(),
            "PROBLEM  camera      /dev/video2 does not exist. Is the camera plugged in? Cameras \
             found: none. Check the camera's cable."
        );
        let c = Check::ok(
            "gpio",
            "chip gpiochip0 \"pinctrl-bcm2711\": relay line 17 free.",
        );
        assert_eq!(
            c.line(),
            "OK       gpio        chip gpiochip0 \"pinctrl-bcm2711\": relay line 17 free"
        );
        let c = Check::warning("milvus", "down", "check the network (and milvus.url)");
        assert!(
            c.line().starts_with("WARNING  milvus      down. Check"),
            "{}",
            c.line()
        );
        assert!(c.line().ends_with("milvus.url)"), "{}", c.line());
        assert_eq!(Check::warning("disk", "x", "").fix, None);
        assert!(
            Check::skipped("display", "none")
                .line()
                .starts_with("SKIPPED  display     ")
        );
    }

    #[test]
    fn json_has_the_status_in_lower_case_and_the_fix() {
        let c = Check::problem("models", "model file x is missing", "reinstall");
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(v["check"], "models");
        assert_eq!(v["status"], "problem");
        assert_eq!(v["fix"], "reinstall");
        let v = serde_json::to_value(Check::ok("clock", "2026-11-24 (UTC)")).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["fix"].is_null()),
            (Some("ok"), true)
        );
    }

    #[test]
    fn only_a_problem_fails() {
        let ok = Check::ok("a", "x");
        let warn = Check::warning("b", "y", "z");
        let skip = Check::skipped("c", "w");
        assert!(!failed(&[ok.clone(), warn.clone(), skip]));
        assert!(failed(&[ok, warn, Check::problem("d", "v", "u")]));
    }

    #[test]
    fn an_unset_clock_is_a_warning_that_says_the_date() {
        let c = check_clock(0);
        assert_eq!(c.status, Status::Warning);
        assert!(c.message.contains("1970-01-01"), "{}", c.message);
        let c = check_clock(1_795_478_400_000);
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Ok, "2026-11-24 (UTC)")
        );
    }

    #[test]
    fn no_milvus_is_skipped_with_the_reason() {
        let c = check_milvus(&Config::default(), None, None).unwrap();
        assert_eq!(c.status, Status::Skipped);
        assert!(c.message.contains("[milvus] url is empty"), "{}", c.message);
    }
}
