//! Fusion of the liveness signals in log-odds.
//!
//! Per frame: `bias + w_cnn·logit(cnn) + Σ w_i·(cue_i − centre_i)`; per visit: the mean of the
//! frames' logits, minus `planar_penalty` when the face moved as one plane. The weights of
//! [`FUSION`] were fitted (logistic regression) on the calibration part of the evaluation set
//! and checked on the other part (`facegate eval --liveness`, README "Liveness"); a cue whose
//! weight is 0 did not pay there.

use serde::Serialize;

use super::cues::Cues;
use super::motion::Motion;

/// Fusion weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fusion {
    pub bias: f32,
    /// Weight of the network's live log-odds (clamped to ±[`LOGIT_CLAMP`]).
    pub cnn: f32,
    /// Weights of the cues, in the order of [`Cues::vector`].
    pub cues: [f32; CUES],
    /// Subtracted from a visit's log-odds when it moved as a plane (see [`Motion::planar`]).
    pub planar_penalty: f32,
    /// Non-similarity motion (eye distances) needed to tell a plane from a head.
    pub min_moved: f32,
    /// Share of that motion the homography may leave unexplained for it to count as planar.
    pub max_parallax_ratio: f32,
}

/// Number of cues in [`Cues::vector`].
pub const CUES: usize = 5;

/// Cue centres subtracted before weighting (typical live values, so that the bias stays
/// meaningful); in the order of [`Cues::vector`].
pub const CUE_CENTRES: [f32; CUES] = [1.5, -1.5, 3.0, 0.0, 15.0];

pub const LOGIT_CLAMP: f32 = 9.0;

impl Cues {
    /// moiré, high-frequency share, bezel, glare, chroma.
    pub fn vector(&self) -> [f32; CUES] {
        [self.moire, self.hf_share, self.bezel, self.glare, self.chroma]
    }

    pub const NAMES: [&'static str; CUES] = ["moire", "hf_share", "bezel", "glare", "chroma"];
}

/// The shipped weights (see the module comment).
pub const FUSION: Fusion = Fusion {
    bias: 0.0,
    cnn: 1.0,
    cues: [0.0; CUES],
    planar_penalty: 4.0,
    min_moved: 0.01,
    max_parallax_ratio: 0.12,
};

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(p / (1 − p))`, clamped.
pub fn logit(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln().clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
}

impl Fusion {
    /// One frame's fused log-odds of being live.
    pub fn frame_logit(&self, cnn: f32, cues: &Cues) -> f32 {
        let v = cues.vector();
        let mut z = self.bias + self.cnn * logit(cnn);
        for i in 0..CUES {
            z += self.cues[i] * (v[i] - CUE_CENTRES[i]);
        }
        z
    }

    /// A visit's fused log-odds from its frames' log-odds and its motion.
    pub fn visit_logit(&self, frame_logits: &[f32], motion: &Motion) -> f32 {
        if frame_logits.is_empty() {
            return -LOGIT_CLAMP;
        }
        let mean = frame_logits.iter().sum::<f32>() / frame_logits.len() as f32;
        if motion.planar(self.min_moved, self.max_parallax_ratio) {
            mean - self.planar_penalty
        } else {
            mean
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planar_motion_lowers_a_visit_and_stillness_does_not() {
        let f = FUSION;
        let still = Motion::default();
        let planar = Motion {
            moved: 0.2,
            parallax: 0.005,
        };
        let head = Motion {
            moved: 0.2,
            parallax: 0.1,
        };
        let z = [1.0, 2.0, 3.0];
        assert_eq!(f.visit_logit(&z, &still), 2.0);
        assert_eq!(f.visit_logit(&z, &head), 2.0);
        assert!(f.visit_logit(&z, &planar) < 2.0 - 3.0);
        assert!((sigmoid(logit(0.3)) - 0.3).abs() < 1e-5);
    }
}
