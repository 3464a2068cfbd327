//! Fusion of the liveness signals in log-odds, as two scores that must both say "live":
//! the network's (`logit(cnn) − offset`) and the model-free cues' (a logistic model of the
//! cues that paid), each averaged over the frames of a visit; the lower one counts, minus a
//! penalty when the face moved as one plane. A linear blend fitted on the synthetic attack set
//! learnt to ignore the network (the synthetic attacks are easy for the cues), and then let
//! the real demo attacks through; with the lower-of-two rule neither signal can outvote the
//! other. The offsets and weights of [`FUSION`] were chosen on the calibration part of
//! `facegate eval --liveness` and checked on its test part (README, "Liveness").

use serde::Serialize;

use super::cues::Cues;
use super::motion::Motion;

/// Fusion weights: two scores in log-odds, each of which can refuse (the lower one counts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fusion {
    /// The network's score is `logit(cnn) − cnn_offset` (logit clamped to ±[`LOGIT_CLAMP`]).
    pub cnn_offset: f32,
    /// The cues' score is `cue_bias + Σ cues[i]·(cue_i − CUE_CENTRES[i])`, in the order of
    /// [`Cues::vector`]; with every weight 0 the cues are not used.
    pub cue_bias: f32,
    pub cues: [f32; CUES],
    /// Subtracted from a visit's log-odds when it moved as a plane (see [`Motion::planar`]).
    pub planar_penalty: f32,
    /// Non-similarity motion (eye distances) needed to tell a plane from a head.
    pub min_moved: f32,
    /// Share of that motion a homography may leave unexplained for it to count as planar.
    pub max_parallax_ratio: f32,
}

/// Number of cues in [`Cues::vector`].
pub const CUES: usize = 5;

/// Cue centres subtracted before weighting (typical live values), in the order of
/// [`Cues::vector`].
pub const CUE_CENTRES: [f32; CUES] = [1.5, -1.5, 3.0, 0.0, 15.0];

pub const LOGIT_CLAMP: f32 = 9.0;

impl Cues {
    /// moiré, high-frequency share, bezel, glare, chroma.
    pub fn vector(&self) -> [f32; CUES] {
        [
            self.moire,
            self.hf_share,
            self.bezel,
            self.glare,
            self.chroma,
        ]
    }

    pub const NAMES: [&'static str; CUES] = ["moire", "hf_share", "bezel", "glare", "chroma"];
}

/// The shipped weights (see the module comment and the README, "Liveness").
///
/// The network's offset is the one the calibration part chose for it (at most 1% of the
/// colour live calibration visits refused by the network). The cues are measured and reported
/// but weighted 0: the greedy selection on the synthetic calibration part picked the
/// high-frequency share, which then refused 2 of the 3 real live demo photos (sharp phone
/// pictures have high frequencies too); on real faces no cue paid (README, "Liveness").
pub const FUSION: Fusion = Fusion {
    cnn_offset: -4.4576,
    cue_bias: 0.0,
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

/// One frame's two scores: (network, cues); the cues' is `None` when no cue is weighted.
pub type Parts = (f32, Option<f32>);

impl Fusion {
    pub fn uses_cues(&self) -> bool {
        self.cues.iter().any(|w| *w != 0.0)
    }

    pub fn parts(&self, cnn: f32, cues: &Cues) -> Parts {
        let s_cnn = logit(cnn) - self.cnn_offset;
        let s_cue = self.uses_cues().then(|| {
            let v = cues.vector();
            let mut z = self.cue_bias;
            for i in 0..CUES {
                z += self.cues[i] * (v[i] - CUE_CENTRES[i]);
            }
            z
        });
        (s_cnn, s_cue)
    }

    /// One frame's fused log-odds of being live: the lower of the two scores.
    pub fn frame_logit(&self, cnn: f32, cues: &Cues) -> f32 {
        let (a, b) = self.parts(cnn, cues);
        b.map_or(a, |b| a.min(b))
    }

    /// A visit's fused log-odds: each score averaged over the frames, the lower one, minus
    /// the planar penalty when the face moved as a plane.
    pub fn visit_logit(&self, parts: &[Parts], motion: &Motion) -> f32 {
        if parts.is_empty() {
            return -LOGIT_CLAMP;
        }
        let n = parts.len() as f32;
        let a = parts.iter().map(|p| p.0).sum::<f32>() / n;
        let cues: Vec<f32> = parts.iter().filter_map(|p| p.1).collect();
        let z = if cues.is_empty() {
            a
        } else {
            a.min(cues.iter().sum::<f32>() / cues.len() as f32)
        };
        if motion.planar(self.min_moved, self.max_parallax_ratio) {
            z - self.planar_penalty
        } else {
            z
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
        let z = [(1.0, None), (2.0, None), (3.0, None)];
        assert_eq!(f.visit_logit(&z, &still), 2.0);
        assert_eq!(f.visit_logit(&z, &head), 2.0);
        assert!(f.visit_logit(&z, &planar) < 2.0 - 3.0);
        // Either score can refuse: the lower mean counts.
        let z = [(3.0, Some(-1.0)), (3.0, Some(0.0))];
        assert_eq!(f.visit_logit(&z, &still), -0.5);
        assert!((sigmoid(logit(0.3)) - 0.3).abs() < 1e-5);
    }
}
