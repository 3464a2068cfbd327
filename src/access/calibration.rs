//! From a target false-positive identification rate (FPIR) to a cosine threshold.
//!
//! The embedder's model card carries the measured tail of its impostor score distribution:
//! for a few false-match rates (FMR, the share of comparisons of two different people that
//! score at or above a cosine), the cosine. One search of a gallery holding `n` templates makes
//! `n` impostor comparisons for a stranger; if each false-matches with probability `p`, the
//! search does with `1 - (1 - p)^n`. So a target FPIR `f` needs `p = 1 - (1 - f)^(1/n)`, and the
//! threshold is the cosine at that FMR. This assumes the `n` comparisons independent; they are
//! not (a stranger who resembles one enrolled face tends to resemble others), which by Jensen's
//! inequality should make the real FPIR lower than the target. Measured on the open-set
//! protocol's report part (README) it is not always: near the measured range the real FPIR came
//! out up to 1.2x the target (photos, 100 and 1,000 enrolled), and far past it, where the tail is
//! extrapolated, about 5x under it (visits, 1,000 enrolled). The bigger the gallery, the higher
//! the threshold: it is derived again whenever the gallery grows.
//!
//! Between table points the FMR is interpolated log-linearly; past the last point it is
//! extrapolated along the last segment (an exponential tail, heavier than the near-Gaussian
//! tail of cosines, so again on the safe side).

use serde::{Deserialize, Serialize};

/// What is compared with the gallery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// One photo (the API's identify).
    Image,
    /// The fused embedding of several frames of one visit (the door).
    Visit,
}

/// One measured impostor tail: parallel arrays, `fmr` decreasing, `score` increasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tail {
    /// False-match rates (share of impostor comparisons at or above `score`).
    pub fmr: Vec<f64>,
    /// The cosine at each rate.
    pub score: Vec<f32>,
    /// Impostor comparisons measured (the table below `1/comparisons` is extrapolated).
    #[serde(default)]
    pub comparisons: u64,
    /// Frames fused per visit when measured (visits only).
    #[serde(default)]
    pub frames: Option<u32>,
}

/// The `[calibration]` table of an embedder card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// How and on what it was measured (free text, shown by `facegate doctor`).
    pub protocol: String,
    pub image: Tail,
    #[serde(default)]
    pub visit: Option<Tail>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("calibration table {0}: needs at least two points")]
    TooShort(&'static str),
    #[error("calibration table {0}: fmr and score have different lengths")]
    Lengths(&'static str),
    #[error("calibration table {0}: fmr must decrease in (0, 1] and score increase")]
    Order(&'static str),
}

impl Tail {
    fn check(&self, name: &'static str) -> Result<(), CalibrationError> {
        if self.fmr.len() != self.score.len() {
            return Err(CalibrationError::Lengths(name));
        }
        if self.fmr.len() < 2 {
            return Err(CalibrationError::TooShort(name));
        }
        let fmr_ok = self.fmr.iter().all(|f| *f > 0.0 && *f <= 1.0)
            && self.fmr.windows(2).all(|w| w[1] < w[0]);
        let score_ok =
            self.score.iter().all(|s| s.is_finite()) && self.score.windows(2).all(|w| w[1] > w[0]);
        if fmr_ok && score_ok {
            Ok(())
        } else {
            Err(CalibrationError::Order(name))
        }
    }

    /// The cosine at which the false-match rate is `fmr`.
    pub fn score_at(&self, fmr: f64) -> f32 {
        let l = fmr.clamp(1e-300, 1.0).log10();
        let logs: Vec<f64> = self.fmr.iter().map(|f| f.log10()).collect();
        let n = logs.len();
        // The segment holding `l`, or the end segment to extrapolate along.
        let i = (0..n - 1)
            .find(|&i| l >= logs[i + 1])
            .unwrap_or(n - 2)
            .min(n - 2);
        let (l0, l1) = (logs[i], logs[i + 1]);
        let (s0, s1) = (f64::from(self.score[i]), f64::from(self.score[i + 1]));
        let s = s0 + (l - l0) / (l1 - l0) * (s1 - s0);
        s as f32
    }

    /// The false-match rate at cosine `score` (inverse of [`Tail::score_at`]).
    pub fn fmr_at(&self, score: f32) -> f64 {
        let n = self.score.len();
        let i = (0..n - 1)
            .find(|&i| score <= self.score[i + 1])
            .unwrap_or(n - 2);
        let (s0, s1) = (f64::from(self.score[i]), f64::from(self.score[i + 1]));
        let (l0, l1) = (self.fmr[i].log10(), self.fmr[i + 1].log10());
        let l = l0 + (f64::from(score) - s0) / (s1 - s0) * (l1 - l0);
        10f64.powf(l).min(1.0)
    }
}

/// Per-comparison false-match rate for a target FPIR over `comparisons` independent ones:
/// `1 - (1 - f)^(1/n)`, computed without cancellation.
pub fn fmr_for(target_fpir: f64, comparisons: usize) -> f64 {
    let n = comparisons.max(1) as f64;
    -((-target_fpir.clamp(0.0, 1.0 - 1e-12)).ln_1p() / n).exp_m1()
}

/// The FPIR expected for a gallery of `comparisons` templates at per-comparison rate `fmr`.
pub fn fpir_for(fmr: f64, comparisons: usize) -> f64 {
    let n = comparisons.max(1) as f64;
    -((n * (-fmr).ln_1p()).exp_m1())
}

impl Calibration {
    pub fn check(&self) -> Result<(), CalibrationError> {
        self.image.check("image")?;
        if let Some(v) = &self.visit {
            v.check("visit")?;
        }
        Ok(())
    }

    /// The tail for a kind of probe (a visit falls back to the image tail when not measured).
    pub fn tail(&self, kind: ProbeKind) -> &Tail {
        match kind {
            ProbeKind::Visit => self.visit.as_ref().unwrap_or(&self.image),
            ProbeKind::Image => &self.image,
        }
    }

    /// The threshold that holds `target_fpir` for a gallery of `templates` templates.
    pub fn threshold(&self, kind: ProbeKind, target_fpir: f64, templates: usize) -> f32 {
        self.tail(kind)
            .score_at(fmr_for(target_fpir, templates))
            .min(1.0)
    }

    /// The FPIR this calibration predicts at `threshold` for `templates` templates.
    pub fn expected_fpir(&self, kind: ProbeKind, threshold: f32, templates: usize) -> f64 {
        fpir_for(self.tail(kind).fmr_at(threshold), templates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail() -> Tail {
        Tail {
            fmr: vec![1e-1, 1e-2, 1e-3, 1e-4],
            score: vec![0.10, 0.20, 0.30, 0.40],
            comparisons: 100_000,
            frames: None,
        }
    }

    #[test]
    fn interpolates_and_extrapolates_log_linearly() {
        let t = tail();
        assert!((t.score_at(1e-2) - 0.20).abs() < 1e-6);
        assert!((t.score_at(10f64.powf(-2.5)) - 0.25).abs() < 1e-6);
        // Beyond the table: along the last segment.
        assert!((t.score_at(1e-6) - 0.60).abs() < 1e-5);
        assert!((t.fmr_at(0.60) - 1e-6).abs() < 1e-9);
        assert!((t.fmr_at(0.25).log10() + 2.5).abs() < 1e-6);
    }

    #[test]
    fn a_bigger_gallery_needs_a_higher_threshold() {
        let c = Calibration {
            protocol: "test".into(),
            image: tail(),
            visit: None,
        };
        let t1 = c.threshold(ProbeKind::Image, 1e-3, 1);
        let t100 = c.threshold(ProbeKind::Image, 1e-3, 100);
        let t1000 = c.threshold(ProbeKind::Image, 1e-3, 1000);
        assert!(t1 < t100 && t100 < t1000, "{t1} {t100} {t1000}");
        assert!((t1 - 0.30).abs() < 1e-4, "{t1}");
        // 1000 comparisons at FPIR 1e-3: about 1e-6 each.
        assert!((t1000 - 0.60).abs() < 1e-3, "{t1000}");
        // And the prediction inverts the derivation.
        let f = c.expected_fpir(ProbeKind::Image, t1000, 1000);
        assert!((f - 1e-3).abs() < 1e-6, "{f}");
        // A stricter target, a higher threshold.
        assert!(c.threshold(ProbeKind::Image, 1e-4, 1000) > t1000);
    }

    #[test]
    fn fmr_for_inverts_fpir_for() {
        for (f, n) in [(1e-3, 1000usize), (0.5, 3), (1e-2, 1)] {
            let p = fmr_for(f, n);
            assert!(
                (fpir_for(p, n) - f).abs() < 1e-12 * f.max(1e-3) * 1e3,
                "{f} {n}"
            );
        }
    }

    #[test]
    fn bad_tables_are_refused() {
        let mut t = tail();
        t.score[2] = 0.1;
        let c = Calibration {
            protocol: String::new(),
            image: t,
            visit: None,
        };
        assert_eq!(c.check(), Err(CalibrationError::Order("image")));
    }
}
