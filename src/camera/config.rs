//! The `[camera]` table of the configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{CameraError, Reopening, reopen::Backoff};

/// The `[camera]` section of the documented default configuration: every key, commented,
/// with its default value.
pub const DEFAULT_TOML: &str = r#"[camera]
# Where frames come from: "v4l2" (a USB or CSI camera), "recorded" (a folder of images,
# replayed), "mjpeg" (an IP camera's HTTP MJPEG stream) or "auto": the V4L2 camera if this
# machine has one, else the recorded frames (so facegate runs anywhere).
source = "auto"
# V4L2 camera: a device path ("/dev/video0") or the camera's name as `v4l2-ctl --list-devices`
# shows it (a case-insensitive part of it is enough, e.g. "C920"). Empty: the first device
# that captures MJPEG, YUYV or grey frames.
device = ""
# Frame size and rate asked of a V4L2 camera. The camera may give something close instead;
# facegate takes what it gives and logs it.
width = 640
height = 480
fps = 30
# Recorded frames: a folder of images (JPEG, PNG, WebP, BMP, PGM/PPM), replayed in file-name
# order, or a single image file. Empty: the frames bundled with facegate ($FACEGATE_FRAMES,
# ./frames, <binary>/../share/facegate/frames, /usr/share/facegate/frames or the source tree's
# frames/, in that order).
recorded_dir = ""
# Frames per second of the replay (fractions allowed, e.g. 0.5 for one frame every 2 s).
recorded_fps = 10.0
# Start again from the first image after the last one; false: the camera ends there.
recorded_loop = true
# IP camera: the URL of its MJPEG stream (multipart/x-mixed-replace over http://, or https://
# with a certificate from a public authority; user and password may be given as
# http://user:password@host/path).
mjpeg_url = ""
# Timeout for the MJPEG stream, in milliseconds: for connecting, for the answer, and for each
# wait for more of the stream (a camera silent this long is reconnected).
mjpeg_timeout_ms = 5000
# A camera that fails (unplugged, stream closed) is reopened after a wait that starts at
# reopen_min_ms and doubles on each failed attempt up to reopen_max_ms.
reopen_min_ms = 500
reopen_max_ms = 30000
"#;

/// Which kind of source to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Auto,
    V4l2,
    Recorded,
    Mjpeg,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    pub source: SourceKind,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub recorded_dir: PathBuf,
    pub recorded_fps: f32,
    pub recorded_loop: bool,
    pub mjpeg_url: String,
    pub mjpeg_timeout_ms: u64,
    pub reopen_min_ms: u64,
    pub reopen_max_ms: u64,
    /// The optional infrared camera (`[camera.ir]`, used when `liveness.ir` is on).
    pub ir: super::ir::IrCameraConfig,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            source: SourceKind::Auto,
            device: String::new(),
            width: 640,
            height: 480,
            fps: 30,
            recorded_dir: PathBuf::new(),
            recorded_fps: 10.0,
            recorded_loop: true,
            mjpeg_url: String::new(),
            mjpeg_timeout_ms: 5000,
            reopen_min_ms: 500,
            reopen_max_ms: 30_000,
            ir: super::ir::IrCameraConfig::default(),
        }
    }
}

impl CameraConfig {
    /// Range checks that serde cannot express. Messages name the key as `camera.<key>`.
    pub fn check(&self) -> Result<(), String> {
        let range = |name: &str, x: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&x) {
                Ok(())
            } else {
                Err(format!("camera.{name} = {x} is outside {lo}..{hi}"))
            }
        };
        range("width", self.width.into(), 16, 8192)?;
        range("height", self.height.into(), 16, 8192)?;
        range("fps", self.fps.into(), 1, 240)?;
        if !(self.recorded_fps >= 0.01 && self.recorded_fps <= 240.0) {
            return Err(format!(
                "camera.recorded_fps = {} is outside 0.01..240",
                self.recorded_fps
            ));
        }
        range("mjpeg_timeout_ms", self.mjpeg_timeout_ms, 100, 600_000)?;
        range("reopen_min_ms", self.reopen_min_ms, 10, 3_600_000)?;
        range("reopen_max_ms", self.reopen_max_ms, 10, 3_600_000)?;
        if self.reopen_max_ms < self.reopen_min_ms {
            return Err(format!(
                "camera.reopen_max_ms = {} is less than camera.reopen_min_ms = {}",
                self.reopen_max_ms, self.reopen_min_ms
            ));
        }
        if self.source == SourceKind::Mjpeg {
            if self.mjpeg_url.is_empty() {
                return Err(
                    "camera.source = \"mjpeg\" needs camera.mjpeg_url (the camera's stream URL)"
                        .into(),
                );
            }
            super::mjpeg::Url::parse(&self.mjpeg_url)
                .map_err(|e| format!("camera.mjpeg_url: {e}"))?;
        }
        self.ir.check()
    }

    /// The kind of source to open: "auto" becomes "v4l2" when a camera is found (a
    /// `/dev/video*` that captures a format facegate reads), else "recorded".
    pub fn resolve_kind(&self) -> SourceKind {
        match self.source {
            SourceKind::Auto => {
                let found = super::v4l2::usable_devices();
                let kind = if found.is_empty() {
                    SourceKind::Recorded
                } else {
                    SourceKind::V4l2
                };
                tracing::info!(?kind, cameras = ?found, "camera source \"auto\" resolved");
                kind
            }
            k => k,
        }
    }

    /// The folder of recorded frames: the configured one, else the first default location
    /// that exists.
    pub fn recorded_dir(&self) -> Result<PathBuf, CameraError> {
        if !self.recorded_dir.as_os_str().is_empty() {
            return Ok(self.recorded_dir.clone());
        }
        let candidates = default_frames_dirs();
        candidates
            .iter()
            .find(|d| d.is_dir())
            .cloned()
            .ok_or_else(|| CameraError::Recorded {
                dir: PathBuf::from("(default)"),
                reason: format!(
                    "camera.recorded_dir is not set and none of the default folders exists ({})",
                    candidates
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.reopen_min_ms),
            Duration::from_millis(self.reopen_max_ms),
        )
    }
}

impl Reopening {
    /// A source that opens what `cfg` names and reopens it with the configured backoff
    /// whenever it fails. Opening happens on the first `next_frame`, in the capture thread.
    pub fn from_config(cfg: &CameraConfig) -> Reopening {
        let open_cfg = cfg.clone();
        let describe = match cfg.source {
            SourceKind::Auto => "camera (auto)".to_string(),
            SourceKind::V4l2 => format!("V4L2 camera {}", display_device(&cfg.device)),
            SourceKind::Recorded if cfg.recorded_dir.as_os_str().is_empty() => {
                "recorded frames (bundled)".to_string()
            }
            SourceKind::Recorded => format!("recorded frames {}", cfg.recorded_dir.display()),
            SourceKind::Mjpeg => format!(
                "MJPEG stream {}",
                super::mjpeg::Url::parse(&cfg.mjpeg_url)
                    .map(|u| u.redacted())
                    .unwrap_or_else(|_| "(invalid URL)".into())
            ),
        };
        Reopening::new(describe, cfg.backoff(), move || {
            super::open_from_config(&open_cfg)
        })
    }
}

fn display_device(device: &str) -> String {
    if device.is_empty() {
        "(first found)".into()
    } else {
        device.into()
    }
}

/// Where the bundled frames are looked for when `camera.recorded_dir` is empty.
pub fn default_frames_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("FACEGATE_FRAMES") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("frames"));
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
        && let Some(prefix) = bin.parent()
    {
        dirs.push(prefix.join("share/facegate/frames"));
    }
    dirs.push(Path::new("/usr/share/facegate/frames").to_owned());
    // A binary run from its source tree (cargo run / cargo test from anywhere).
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("frames"));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Wrapper {
        camera: CameraConfig,
    }

    fn parse(text: &str) -> Result<CameraConfig, String> {
        let w: Wrapper = toml::from_str(text).map_err(|e| e.to_string())?;
        w.camera.check()?;
        Ok(w.camera)
    }

    #[test]
    fn default_text_parses_to_default_config() {
        assert_eq!(parse(DEFAULT_TOML).unwrap(), CameraConfig::default());
        // Every key of the struct is in the text, uncommented.
        let keys = DEFAULT_TOML
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .count();
        assert_eq!(keys, 12);
        assert!(CameraConfig::default().check().is_ok());
    }

    #[test]
    fn unknown_keys_and_kinds_are_refused() {
        let e = parse("[camera]\nwidht = 320\n").unwrap_err();
        assert!(e.contains("widht"), "{e}");
        let e = parse("[camera]\nsource = \"usb\"\n").unwrap_err();
        assert!(e.contains("usb"), "{e}");
        let c = parse("[camera]\nsource = \"mjpeg\"\nmjpeg_url = \"http://cam/video\"\n").unwrap();
        assert_eq!(c.source, SourceKind::Mjpeg);
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for (text, key) in [
            ("fps = 0", "camera.fps"),
            ("width = 100000", "camera.width"),
            ("recorded_fps = 0.0", "camera.recorded_fps"),
            ("recorded_fps = nan", "camera.recorded_fps"),
            (
                "reopen_min_ms = 5000\nreopen_max_ms = 1000",
                "reopen_max_ms",
            ),
            ("reopen_min_ms = 1", "camera.reopen_min_ms"),
            ("source = \"mjpeg\"", "mjpeg_url"),
            (
                "source = \"mjpeg\"\nmjpeg_url = \"rtsp://cam/video\"",
                "mjpeg_url",
            ),
        ] {
            let e = parse(&format!("[camera]\n{text}\n")).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn explicit_kinds_resolve_to_themselves() {
        for k in [SourceKind::V4l2, SourceKind::Recorded, SourceKind::Mjpeg] {
            let c = CameraConfig {
                source: k,
                ..CameraConfig::default()
            };
            assert_eq!(c.resolve_kind(), k);
        }
    }

    #[test]
    fn configured_recorded_dir_wins() {
        let c = CameraConfig {
            recorded_dir: "/some/where".into(),
            ..CameraConfig::default()
        };
        assert_eq!(c.recorded_dir().unwrap(), PathBuf::from("/some/where"));
    }
}
