//! Liveness (presentation-attack detection): is the face in front of the camera a live person,
//! or a photo, a print or a screen?
//!
//! Several independent signals, fused: the passive network of the `liveness` model card
//! ([`cnn`]), model-free cues measured on the frame ([`cues`]: screen moiré, a straight bezel
//! or paper edge, glare, colour), and, over the frames of a visit, motion ([`motion`]: a photo
//! moves as one plane). The network's score and the cues' score (log-odds, [`fuse::FUSION`])
//! are each averaged over the frames of a visit and the lower one counts, pulled down when the
//! face moved as a plane. [`Visit`] keeps the frames of one visit. The optional active
//! challenge ([`challenge`], `challenge = "turn"`) reads the 68-point landmarks ([`landmarks`]).
//! The optional infrared check ([`ir`], `ir = "enforce"`) asks a second, infrared camera to
//! see the face too, lit, at the same place (it stops screens, not prints).

pub mod challenge;
pub mod cnn;
pub mod config;
pub mod cues;
pub mod fuse;
pub mod ir;
pub mod landmarks;
pub mod motion;

use std::collections::VecDeque;
use std::path::Path;

use image::RgbImage;
use serde::Serialize;

pub use config::{ChallengeKind, LivenessConfig, Mode};
pub use cues::Cues;
pub use fuse::Fusion;
pub use motion::Motion;

use super::VisionError;
use super::detect::{Detection, Point};
use super::model::{self, ModelCard, ModelKind, Plan};

/// The liveness network (and the landmark network when a challenge is on), loaded and
/// optimised once, and the settings.
#[derive(Clone)]
pub struct LivenessModels {
    pub card: ModelCard,
    plan: Plan,
    /// The landmark model, loaded when `challenge` is not "off".
    pub landmarks: Option<(ModelCard, Plan)>,
    pub config: LivenessConfig,
}

impl LivenessModels {
    /// Load the configured liveness model from `dir`.
    pub fn load(dir: &Path, config: &LivenessConfig) -> Result<LivenessModels, VisionError> {
        let card = model::find_card(dir, &config.model, ModelKind::Liveness)?;
        let plan = card.load_plan()?;
        let landmarks = if config.challenge != ChallengeKind::Off {
            let card = model::find_card(dir, &config.landmark_model, ModelKind::Landmarks)?;
            let plan = card.load_plan()?;
            Some((card, plan))
        } else {
            None
        };
        Ok(LivenessModels {
            card,
            plan,
            landmarks,
            config: config.clone(),
        })
    }

    /// The crop scale of the card (the face box is enlarged this much).
    pub fn crop_scale(&self) -> f32 {
        self.card.liveness.as_ref().map_or(1.0, |l| l.crop_scale)
    }
}

/// What one frame says about the liveness of one face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameEvidence {
    /// The network's live probability.
    pub cnn: f32,
    pub cues: Cues,
    /// Fused live score of this frame alone (0..1).
    pub score: f32,
    /// The detector's keypoints (for the motion across frames).
    #[serde(skip)]
    pub keypoints: Vec<Point>,
}

/// One thread's liveness checker.
pub struct Checker {
    cnn: cnn::Cnn,
    cues: cues::CueMeter,
    scale: f32,
    landmarker: Option<landmarks::Landmarker>,
    pub fusion: Fusion,
}

impl Checker {
    pub fn new(models: &LivenessModels) -> Result<Checker, VisionError> {
        Ok(Checker {
            cnn: cnn::Cnn::new(&models.card, &models.plan)?,
            cues: cues::CueMeter::new(),
            scale: models.crop_scale(),
            landmarker: models
                .landmarks
                .as_ref()
                .map(|(card, plan)| landmarks::Landmarker::new(card, plan))
                .transpose()?,
            fusion: fuse::FUSION,
        })
    }

    /// The 68 landmarks of the face `det` (for the challenge); `None` when no landmark model
    /// is loaded (challenge off).
    pub fn landmarks(
        &mut self,
        frame: &RgbImage,
        det: &Detection,
    ) -> Option<Result<Vec<Point>, VisionError>> {
        self.landmarker.as_mut().map(|l| l.points(frame, &det.bbox))
    }

    /// Look at the face `det` of `frame`.
    pub fn frame(
        &mut self,
        frame: &RgbImage,
        det: &Detection,
    ) -> Result<FrameEvidence, VisionError> {
        let cnn = self.cnn.live_score(frame, &det.bbox)?;
        let cues = self
            .cues
            .measure(frame, &det.bbox, self.cnn.crop(), self.scale);
        Ok(FrameEvidence {
            cnn,
            score: fuse::sigmoid(self.fusion.frame_logit(cnn, &cues)),
            cues,
            keypoints: det.landmarks.clone(),
        })
    }
}

/// A visit's liveness so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VisitScore {
    /// Fused live score (0..1).
    pub score: f32,
    /// `score >= threshold`.
    pub live: bool,
    /// Frames it is based on.
    pub frames: usize,
    /// Median of the network's per-frame live probability.
    pub cnn_median: f32,
    pub motion: Motion,
}

/// The frames of one visit (the newest `window` of them).
#[derive(Debug, Clone)]
pub struct Visit {
    frames: VecDeque<FrameEvidence>,
    window: usize,
    threshold: f32,
    fusion: Fusion,
}

impl Visit {
    pub fn new(config: &LivenessConfig) -> Visit {
        Visit {
            frames: VecDeque::new(),
            window: config.window.max(1),
            threshold: config.threshold,
            fusion: fuse::FUSION,
        }
    }

    /// With other fusion weights (the evaluation fits them).
    pub fn with_fusion(mut self, fusion: Fusion) -> Visit {
        self.fusion = fusion;
        self
    }

    /// The face left (or another face came): start again.
    pub fn reset(&mut self) {
        self.frames.clear();
    }

    pub fn push(&mut self, e: FrameEvidence) {
        if self.frames.len() == self.window {
            self.frames.pop_front();
        }
        self.frames.push_back(e);
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The visit's fused score; `None` before the first frame.
    pub fn score(&self) -> Option<VisitScore> {
        if self.frames.is_empty() {
            return None;
        }
        let keypoints: Vec<Vec<Point>> = self.frames.iter().map(|f| f.keypoints.clone()).collect();
        let motion = motion::motion(&keypoints);
        let parts: Vec<fuse::Parts> = self
            .frames
            .iter()
            .map(|f| self.fusion.parts(f.cnn, &f.cues))
            .collect();
        let score = fuse::sigmoid(self.fusion.visit_logit(&parts, &motion));
        let mut cnn: Vec<f32> = self.frames.iter().map(|f| f.cnn).collect();
        let mid = cnn.len() / 2;
        let cnn_median = *cnn.select_nth_unstable_by(mid, f32::total_cmp).1;
        Some(VisitScore {
            score,
            live: score >= self.threshold,
            frames: self.frames.len(),
            cnn_median,
            motion,
        })
    }
}

/// Why a visit in `mode` is refused as not live (the detail of the "not live" refusal): `Some`
/// only when enforcing and the visit is not live, or was not measured (safe by default: no
/// score is no admission).
pub fn refusal(mode: Mode, visit: Option<&VisitScore>) -> Option<String> {
    match (mode, visit) {
        (Mode::Enforce, Some(v)) if !v.live => Some(format!("score {:.2}", v.score)),
        (Mode::Enforce, None) => Some("liveness not measured".into()),
        _ => None,
    }
}

/// The liveness of one still image (the API): no motion, one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StillLiveness {
    /// Fused live score (0..1); `None` when it could not be measured.
    pub score: Option<f32>,
    /// The network's live probability.
    pub cnn: Option<f32>,
    /// `score >= threshold`.
    pub live: bool,
    pub threshold: f32,
    /// What the API does with it ("warn": reported only; "enforce": refuses).
    pub mode: Mode,
}

impl StillLiveness {
    pub fn judge(
        mode: Mode,
        threshold: f32,
        evidence: Option<Result<FrameEvidence, VisionError>>,
    ) -> StillLiveness {
        let e = match evidence {
            Some(Ok(e)) => Some(e),
            Some(Err(err)) => {
                tracing::warn!(error = %err, "liveness not measured");
                None
            }
            None => None,
        };
        StillLiveness {
            score: e.as_ref().map(|e| e.score),
            cnn: e.as_ref().map(|e| e.cnn),
            live: e.as_ref().is_some_and(|e| e.score >= threshold),
            threshold,
            mode,
        }
    }

    /// Why the face is refused as not live (the detail of the "not live" refusal), when the
    /// API enforces liveness and the face is not live or was not measured.
    pub fn refusal(&self) -> Option<String> {
        match (self.mode, self.score) {
            (Mode::Enforce, Some(s)) if !self.live => Some(format!("score {s:.2}")),
            (Mode::Enforce, None) => Some("liveness not measured".into()),
            _ => None,
        }
    }
}
