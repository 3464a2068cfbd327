//! The configuration: one TOML file. [`default_toml`] is the documented default with every
//! key; unknown or misspelled keys are an error that names the key and the nearest valid one,
//! and values are range-checked when the file is loaded.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::access::config::AccessConfig;
pub use crate::access::recognition::RecognitionConfig;
use crate::api::config::ApiConfig;
use crate::camera::config::CameraConfig;
use crate::gallery::config::{GalleryConfig, MilvusConfig};
use crate::hw::config::HwConfig;
use crate::vision::liveness::LivenessConfig;
use crate::vision::{AlignLimits, DetectParams, VisionParams};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The `[vision]` and `[recognition]` sections of the documented default.
const VISION_TOML: &str = r#"# facegate configuration. Every key is optional; the values shown are the defaults.

[vision]
# Directory holding the ONNX models and their cards (*.toml). Empty: look in $FACEGATE_MODELS,
# ./models, <binary>/../share/facegate/models and /usr/share/facegate/models, in that order.
models_dir = ""
# Face detector, by card name: "blazeface-front-128" (faces within ~2 m of the camera, fast)
# or "blazeface-back-256" (smaller, farther faces; about 5x the cost).
detector = "blazeface-front-128"
# Face embedder, by card name, or "auto" for the one the model cards mark as fastest on this
# CPU ("mobilefacenet" in float32, or "mobilefacenet-int8").
embedder = "auto"
# Minimum detector confidence (0..1) to accept a face. Real faces score 0.75-0.95 with
# blazeface-front-128; faces seen in textures, a cat or a test chart score up to ~0.65.
detect_threshold = 0.7
# Overlap (IoU, 0..1) above which two detections are merged into one face.
nms_iou = 0.3
# Faces narrower than this (pixels in the camera frame) are ignored.
min_face_px = 24
# Take a second, closer look at each face for more precise landmarks (costs one more
# detector run per face; improves accuracy on small faces).
refine_landmarks = true
# ...but only for a face the closer look magnifies at least this much (the frame's long side
# over 2.2 face widths): a face already large in the frame gains little from it. 1.0: every
# face smaller than the frame. 1.0..=10.
refine_min_zoom = 1.0
# Also search the frame in overlapping windows for faces too small for the whole-frame view
# (group photos, a camera far from the door). Costs 9 more detector runs per frame.
small_faces = false
# Also embed the mirror image of each face and average the two: 2x the embedder cost, and
# on LFW DevTest 99.3% instead of 98.7% accuracy. The model card's threshold assumes it is on.
flip_average = true
# Faces whose eyes are closer than this (pixels) are refused as too small to recognise.
min_eye_distance_px = 16
# Faces turned (yaw) or tilted (roll) more than this many degrees are refused.
max_yaw_deg = 40
max_roll_deg = 35
# Images larger than this many pixels are refused before decoding.
max_image_pixels = 40000000
"#;

/// The documented default configuration: every section, every key, with its default value.
pub fn default_toml() -> String {
    [
        VISION_TOML,
        crate::access::recognition::DEFAULT_TOML,
        crate::gallery::config::DEFAULT_TOML,
        crate::access::config::DEFAULT_TOML,
        crate::vision::liveness::config::DEFAULT_TOML,
        "\n",
        crate::camera::config::DEFAULT_TOML,
        crate::camera::ir::DEFAULT_TOML,
        "\n",
        crate::hw::config::DEFAULT_TOML,
        "\n",
        crate::api::config::DEFAULT_TOML,
        crate::events_out::config::DEFAULT_TOML,
        crate::console::config::DEFAULT_TOML,
    ]
    .concat()
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub vision: VisionConfig,
    pub recognition: RecognitionConfig,
    pub gallery: GalleryConfig,
    pub milvus: MilvusConfig,
    pub access: AccessConfig,
    pub liveness: LivenessConfig,
    pub camera: CameraConfig,
    pub hw: HwConfig,
    pub api: ApiConfig,
    pub mqtt: crate::events_out::MqttConfig,
    pub webhooks: crate::events_out::WebhooksConfig,
    pub console: crate::console::ConsoleConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionConfig {
    pub models_dir: PathBuf,
    pub detector: String,
    pub embedder: String,
    pub detect_threshold: f32,
    pub nms_iou: f32,
    pub min_face_px: f32,
    pub refine_landmarks: bool,
    pub refine_min_zoom: f32,
    pub small_faces: bool,
    pub flip_average: bool,
    pub min_eye_distance_px: f32,
    pub max_yaw_deg: f32,
    pub max_roll_deg: f32,
    pub max_image_pixels: u64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        let d = DetectParams::default();
        let l = AlignLimits::default();
        VisionConfig {
            models_dir: PathBuf::new(),
            detector: "blazeface-front-128".into(),
            embedder: "auto".into(),
            detect_threshold: d.score_threshold,
            nms_iou: d.nms_iou,
            min_face_px: d.min_face_px,
            refine_landmarks: d.refine,
            refine_min_zoom: d.refine_min_zoom,
            small_faces: d.small_faces,
            flip_average: VisionParams::default().flip,
            min_eye_distance_px: l.min_eye_distance_px,
            max_yaw_deg: l.max_yaw_deg,
            max_roll_deg: l.max_roll_deg,
            max_image_pixels: crate::vision::frame::DEFAULT_MAX_PIXELS,
        }
    }
}

impl VisionConfig {
    pub fn params(&self) -> VisionParams {
        VisionParams {
            detect: DetectParams {
                score_threshold: self.detect_threshold,
                nms_iou: self.nms_iou,
                min_face_px: self.min_face_px,
                refine: self.refine_landmarks,
                refine_min_zoom: self.refine_min_zoom,
                small_faces: self.small_faces,
                ..DetectParams::default()
            },
            limits: AlignLimits {
                min_eye_distance_px: self.min_eye_distance_px,
                max_yaw_deg: self.max_yaw_deg,
                max_roll_deg: self.max_roll_deg,
            },
            flip: self.flip_average,
        }
    }

    /// The models directory: the configured one, else the first default location that exists.
    pub fn models_dir(&self) -> Option<PathBuf> {
        if self.models_dir.as_os_str().is_empty() {
            crate::vision::model::default_models_dir()
        } else {
            Some(self.models_dir.clone())
        }
    }

    /// `None` for "auto".
    pub fn embedder_name(&self) -> Option<&str> {
        if self.embedder == "auto" {
            None
        } else {
            Some(&self.embedder)
        }
    }
}

impl Config {
    /// Parse and check a configuration text. `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let config: Config = toml::from_str(text).map_err(|e| invalid(explain_toml_error(&e)))?;
        config.check().map_err(invalid)?;
        for warning in config.access.deprecated() {
            tracing::warn!(config = %path.display(), "{warning}");
        }
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Range checks that serde cannot express.
    fn check(&self) -> Result<(), String> {
        let v = &self.vision;
        let unit = |name: &str, x: f32| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("vision.{name} = {x} is outside 0..1"))
            }
        };
        unit("detect_threshold", v.detect_threshold)?;
        unit("nms_iou", v.nms_iou)?;
        if !(v.min_face_px >= 0.0 && v.min_face_px <= 4096.0) {
            return Err(format!(
                "vision.min_face_px = {} is outside 0..4096",
                v.min_face_px
            ));
        }
        if !(1.0..=10.0).contains(&v.refine_min_zoom) {
            return Err(format!(
                "vision.refine_min_zoom = {} is outside 1..10",
                v.refine_min_zoom
            ));
        }
        if !(v.min_eye_distance_px >= 0.0 && v.min_eye_distance_px <= 1024.0) {
            return Err(format!(
                "vision.min_eye_distance_px = {} is outside 0..1024",
                v.min_eye_distance_px
            ));
        }
        for (name, x) in [
            ("max_yaw_deg", v.max_yaw_deg),
            ("max_roll_deg", v.max_roll_deg),
        ] {
            if !(0.0..=180.0).contains(&x) {
                return Err(format!("vision.{name} = {x} is outside 0..180"));
            }
        }
        if v.max_image_pixels < 64 * 64 {
            return Err(format!(
                "vision.max_image_pixels = {} is too small (at least 4096)",
                v.max_image_pixels
            ));
        }
        self.recognition.check()?;
        self.gallery.check()?;
        self.milvus.check()?;
        self.access.check()?;
        self.liveness.check()?;
        self.camera.check()?;
        if self.liveness.ir != crate::vision::liveness::Mode::Off {
            self.camera.ir.check_in_use()?;
        }
        self.hw.check()?;
        self.api.check()?;
        self.mqtt.check()?;
        self.webhooks.check()?;
        self.console.check()?;
        Ok(())
    }
}

/// Turn serde's "unknown field `x`, expected one of ..." into a message that also suggests the
/// nearest valid key.
fn explain_toml_error(e: &toml::de::Error) -> String {
    let msg = e.message();
    let location = e
        .span()
        .map(|s| format!(" (at byte {})", s.start))
        .unwrap_or_default();
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let suggestion = nearest(field, &valid)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return format!(
            "unknown key `{field}`{location}{suggestion} (valid keys here: {})",
            valid.join(", ")
        );
    }
    format!("{msg}{location}")
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_parses_to_default_config() {
        let c = Config::parse(&default_toml(), Path::new("default")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn a_removed_key_still_loads_and_is_reported() {
        let c = Config::parse("[access]\nreject_threshold = 0.3\n", Path::new("c.toml")).unwrap();
        let w = c.access.deprecated();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("reject_threshold") && w[0].contains("[recognition]"));
        assert!(Config::default().access.deprecated().is_empty());
    }

    #[test]
    fn misspelled_key_names_key_and_suggestion() {
        let e =
            Config::parse("[vision]\ndetect_treshold = 0.6\n", Path::new("c.toml")).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("detect_treshold") && m.contains("did you mean `detect_threshold`"),
            "{m}"
        );
        let e = Config::parse("[visoin]\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("did you mean `vision`"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        let e = Config::parse("[vision]\nnms_iou = 1.5\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("nms_iou"), "{e}");
        let e = Config::parse("[recognition]\nthreshold = 3.0\n", Path::new("c.toml")).unwrap_err();
        assert!(e.to_string().contains("cosine"), "{e}");
        let e = Config::parse("[milvus]\nurl = \"localhost:19530\"\n", Path::new("c.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("http://host:19530"), "{e}");
        let e = Config::parse("[milvus]\nsearch_timout_ms = 5\n", Path::new("c.toml")).unwrap_err();
        assert!(
            e.to_string().contains("did you mean `search_timeout_ms`"),
            "{e}"
        );
    }
}
