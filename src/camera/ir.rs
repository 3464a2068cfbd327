//! The `[camera.ir]` table: the optional infrared camera of `liveness.ir` (a NoIR camera with
//! an infrared light beside the colour camera), opened with the same source types as the
//! colour camera, and its registration to the colour camera.

use std::path::PathBuf;

use serde::Deserialize;

use super::config::{CameraConfig, SourceKind};
use super::{CameraError, FrameSource, Reopening};

/// The `[camera.ir]` section of the documented default configuration.
pub const DEFAULT_TOML: &str = r#"
[camera.ir]
# The infrared camera, used only when liveness.ir is not "off": "v4l2" (a USB or CSI camera)
# or "recorded" (a folder of infrared images replayed, for tests and replays).
source = "v4l2"
# V4L2 infrared camera: a device path ("/dev/video2") or a part of its name, as camera.device.
# Must be set when liveness.ir is on (the first camera found is most likely the colour one).
device = ""
# Frame size and rate asked of the infrared camera.
width = 640
height = 480
fps = 30
# Recorded infrared frames: a folder of images in file-name order (must be set when
# source = "recorded"; the bundled frames are colour pictures, never used as infrared).
recorded_dir = ""
recorded_fps = 10.0
recorded_loop = true
# Registration: where the colour picture falls in the infrared one. The colour frame's pixel
# (x, y) is at (scale * x + offset_x, scale * y + offset_y) in the infrared frame. The default
# is the same place (both cameras side by side with the same lens and frame size); measure it
# once by holding a face at the door's usual distance.
scale = 1.0
offset_x = 0.0
offset_y = 0.0
"#;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IrCameraConfig {
    pub source: SourceKind,
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub recorded_dir: PathBuf,
    pub recorded_fps: f32,
    pub recorded_loop: bool,
    pub scale: f32,
    pub offset_x: f32,
    pub offset_y: f32,
}

impl Default for IrCameraConfig {
    fn default() -> Self {
        IrCameraConfig {
            source: SourceKind::V4l2,
            device: String::new(),
            width: 640,
            height: 480,
            fps: 30,
            recorded_dir: PathBuf::new(),
            recorded_fps: 10.0,
            recorded_loop: true,
            scale: 1.0,
            offset_x: 0.0,
            offset_y: 0.0,
        }
    }
}

impl IrCameraConfig {
    /// Range checks (always, so that a mistake shows before the camera is switched on).
    /// Messages name the key as `camera.ir.<key>`.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.source, SourceKind::V4l2 | SourceKind::Recorded) {
            return Err(format!(
                "camera.ir.source = {:?}: the infrared camera is \"v4l2\" or \"recorded\"",
                self.source
            ));
        }
        if !(self.scale.is_finite() && (0.05..=20.0).contains(&self.scale)) {
            return Err(format!(
                "camera.ir.scale = {} is outside 0.05..20",
                self.scale
            ));
        }
        for (name, v) in [("offset_x", self.offset_x), ("offset_y", self.offset_y)] {
            if !(v.is_finite() && v.abs() <= 10_000.0) {
                return Err(format!("camera.ir.{name} = {v} is outside -10000..10000"));
            }
        }
        let range = |name: &str, x: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&x) {
                Ok(())
            } else {
                Err(format!("camera.ir.{name} = {x} is outside {lo}..{hi}"))
            }
        };
        range("width", self.width, 16, 8192)?;
        range("height", self.height, 16, 8192)?;
        range("fps", self.fps, 1, 240)?;
        if !(self.recorded_fps >= 0.01 && self.recorded_fps <= 240.0) {
            return Err(format!(
                "camera.ir.recorded_fps = {} is outside 0.01..240",
                self.recorded_fps
            ));
        }
        Ok(())
    }

    /// Checks that apply once the infrared camera is in use (`liveness.ir` not "off").
    pub fn check_in_use(&self) -> Result<(), String> {
        match self.source {
            SourceKind::Recorded if self.recorded_dir.as_os_str().is_empty() => Err(
                "liveness.ir is on and camera.ir.source = \"recorded\": set camera.ir.recorded_dir \
                 to the folder of infrared frames"
                    .into(),
            ),
            SourceKind::V4l2 if self.device.trim().is_empty() => Err(
                "liveness.ir is on: set camera.ir.device to the infrared camera (a /dev/video* \
                 path or a part of its name; `v4l2-ctl --list-devices` lists them)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// The infrared camera as a camera configuration (the colour camera's reopen backoff).
    pub fn camera_config(&self, colour: &CameraConfig) -> CameraConfig {
        CameraConfig {
            source: self.source,
            device: self.device.clone(),
            width: self.width,
            height: self.height,
            fps: self.fps,
            recorded_dir: self.recorded_dir.clone(),
            recorded_fps: self.recorded_fps,
            recorded_loop: self.recorded_loop,
            reopen_min_ms: colour.reopen_min_ms,
            reopen_max_ms: colour.reopen_max_ms,
            ..CameraConfig::default()
        }
    }

    /// The infrared camera as a source that is opened on its first frame and reopened with
    /// backoff whenever it fails (unplugged, silent), as the colour camera.
    pub fn open(&self, colour: &CameraConfig) -> Reopening {
        let cfg = self.camera_config(colour);
        let describe = match self.source {
            SourceKind::Recorded => {
                format!("infrared recorded frames {}", cfg.recorded_dir.display())
            }
            _ => format!("infrared V4L2 camera {}", cfg.device),
        };
        let backoff = cfg.backoff();
        Reopening::new(
            describe,
            backoff,
            move || -> Result<Box<dyn FrameSource>, CameraError> { super::open_from_config(&cfg) },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrap {
        camera: CameraConfig,
    }

    #[test]
    fn the_table_parses_under_camera_and_bad_values_are_refused() {
        let w: Wrap = toml::from_str(&format!("[camera]\n{DEFAULT_TOML}")).unwrap();
        assert_eq!(w.camera.ir, IrCameraConfig::default());
        assert!(w.camera.ir.check().is_ok());
        // Off by default: nothing needs setting until it is used.
        assert!(
            w.camera
                .ir
                .check_in_use()
                .unwrap_err()
                .contains("camera.ir.device")
        );
        let w: Wrap =
            toml::from_str("[camera.ir]\nsource = \"recorded\"\nrecorded_dir = \"/x\"\n").unwrap();
        assert!(w.camera.ir.check_in_use().is_ok());
        assert!(toml::from_str::<Wrap>("[camera.ir]\nscael = 2.0\n").is_err());
        for (text, key) in [
            ("source = \"mjpeg\"", "camera.ir.source"),
            ("scale = 0.0", "camera.ir.scale"),
            ("offset_x = nan", "camera.ir.offset_x"),
            ("fps = 0", "camera.ir.fps"),
        ] {
            let w: Wrap = toml::from_str(&format!("[camera.ir]\n{text}\n")).unwrap();
            let e = w.camera.ir.check().unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
