//! The `[liveness]` configuration section.

use serde::{Deserialize, Serialize};

pub const DEFAULT_TOML: &str = r#"
[liveness]
# Presentation-attack detection (a photo, a print or a phone screen held up to the camera).
# Each mode is "off" (not looked at), "warn" (measured, logged and reported, never refuses)
# or "enforce" (a face that is not live is refused: "not live" on the display and in the audit
# log). At the door a decision is about a whole visit (every frame of the face so far).
door = "enforce"
# The HTTP API's /v1/verify and /v1/identify judge one still image: the score and the decision
# are in every answer; "enforce" refuses a face that is not live.
api = "warn"
# Passive liveness model, by card name (models/<name>.toml, kind = "liveness").
model = "fr-liveness-128"
# Fused live score (0..1) under which a visit (door) or an image (API) is not live. 0.5 is
# the point chosen on the calibration part of `facegate eval --liveness` (the network's offset
# there refuses at most 1% of live visits; see the README, "Liveness"); lower lets more
# attacks through, higher refuses more real people.
threshold = 0.5
# Frames of a visit the door looks at (the newest ones), at most.
window = 15
# Active challenge at the door, for high-security doors: "off", or "turn": once a face would
# be admitted, the display asks the person to turn the head to the left or to the right
# (chosen at random for each visit, so it cannot be pre-recorded) and the door waits for the
# landmark model to see that turn, with the parallax of a real head (a photo turned in the
# hand moves as one plane). Refused: "head turn not seen" or "turn looked like a flat
# picture". Independent of `door` (the passive check still applies as set there).
challenge = "off"
# How long the door waits for the asked head turn (ms, from the moment it is asked).
challenge_timeout_ms = 5000
# Landmark model the challenge reads, by card name (models/<name>.toml, kind = "landmarks").
landmark_model = "fr-landmark-68"
# Infrared check at the door (the camera is [camera.ir]): "off", "warn" (measured and logged,
# never refuses) or "enforce": the face must also be found, lit, at the same place in the
# infrared frame taken nearest in time. A phone screen gives off almost no near infrared (dark
# there); a printed photo reflects it and looks like a grey face: infrared stops screens, not
# prints. Refused: "no face in infrared", "face dark in infrared", "no infrared picture" (the
# infrared camera is unplugged or silent). Independent of `door`.
ir = "off"
# The infrared frame must have been taken within this many ms of the colour frame.
ir_max_skew_ms = 150
# Overlap (IoU, 0..1) the infrared detector's face must have with the colour face's box
# mapped into the infrared frame (camera.ir's registration).
ir_min_iou = 0.4
# The face's box in the infrared frame must be at least this bright (mean, 0..255) and this
# contrasted (standard deviation, 0..255). Defaults set by reasoning, not measured on a real
# infrared camera (README, "Infrared camera").
ir_min_mean = 40.0
ir_min_contrast = 8.0
"#;

/// The door's active challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeKind {
    Off,
    /// Turn the head to the side the display asks.
    Turn,
}

/// What a liveness check does with its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Off,
    Warn,
    Enforce,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LivenessConfig {
    pub door: Mode,
    pub api: Mode,
    pub model: String,
    pub threshold: f32,
    pub window: usize,
    pub challenge: ChallengeKind,
    pub challenge_timeout_ms: u64,
    pub landmark_model: String,
    pub ir: Mode,
    pub ir_max_skew_ms: u64,
    pub ir_min_iou: f32,
    pub ir_min_mean: f32,
    pub ir_min_contrast: f32,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            door: Mode::Enforce,
            api: Mode::Warn,
            model: "fr-liveness-128".into(),
            threshold: 0.5,
            window: 15,
            challenge: ChallengeKind::Off,
            challenge_timeout_ms: 5000,
            landmark_model: "fr-landmark-68".into(),
            ir: Mode::Off,
            ir_max_skew_ms: 150,
            ir_min_iou: 0.4,
            ir_min_mean: 40.0,
            ir_min_contrast: 8.0,
        }
    }
}

impl LivenessConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "liveness.threshold = {} is outside 0..1",
                self.threshold
            ));
        }
        if !(1..=300).contains(&self.window) {
            return Err(format!(
                "liveness.window = {} is outside 1..300",
                self.window
            ));
        }
        if self.model.trim().is_empty() && (self.door != Mode::Off || self.api != Mode::Off) {
            return Err(
                "liveness.model is empty but liveness is on (set door and api to \"off\")".into(),
            );
        }
        if self.challenge != ChallengeKind::Off {
            if !(500..=60_000).contains(&self.challenge_timeout_ms) {
                return Err(format!(
                    "liveness.challenge_timeout_ms = {} is outside 500..60000",
                    self.challenge_timeout_ms
                ));
            }
            if self.landmark_model.trim().is_empty() {
                return Err("liveness.landmark_model is empty but liveness.challenge is on".into());
            }
        }
        self.check_ir()
    }

    fn check_ir(&self) -> Result<(), String> {
        if !(1..=5000).contains(&self.ir_max_skew_ms) {
            return Err(format!(
                "liveness.ir_max_skew_ms = {} is outside 1..5000",
                self.ir_max_skew_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.ir_min_iou) {
            return Err(format!(
                "liveness.ir_min_iou = {} is outside 0..1",
                self.ir_min_iou
            ));
        }
        for (name, v) in [
            ("ir_min_mean", self.ir_min_mean),
            ("ir_min_contrast", self.ir_min_contrast),
        ] {
            if !(0.0..=255.0).contains(&v) {
                return Err(format!("liveness.{name} = {v} is outside 0..255"));
            }
        }
        Ok(())
    }

    /// Whether any user of the vision path needs the liveness models loaded.
    pub fn needed(&self) -> bool {
        self.door != Mode::Off || self.api != Mode::Off || self.challenge != ChallengeKind::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_is_the_default_and_bad_values_are_refused() {
        #[derive(Deserialize)]
        struct Wrap {
            liveness: LivenessConfig,
        }
        let w: Wrap = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(w.liveness, LivenessConfig::default());
        assert_eq!(w.liveness.door, Mode::Enforce);
        assert_eq!(w.liveness.api, Mode::Warn);
        let bad = LivenessConfig {
            threshold: 1.5,
            ..LivenessConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("threshold"));
        let e = toml::from_str::<Wrap>("[liveness]\ndoor = \"maybe\"\n").err();
        assert!(e.is_some());
        let w: Wrap = toml::from_str("[liveness]\nchallenge = \"turn\"\n").unwrap();
        assert_eq!(w.liveness.challenge, ChallengeKind::Turn);
        assert!(w.liveness.needed());
        let bad = LivenessConfig {
            challenge: ChallengeKind::Turn,
            challenge_timeout_ms: 100,
            ..LivenessConfig::default()
        };
        assert!(bad.check().unwrap_err().contains("challenge_timeout_ms"));
        assert!(toml::from_str::<Wrap>("[liveness]\nchallenge = \"blink\"\n").is_err());
    }
}
