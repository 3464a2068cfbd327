//! Cohort score normalisation in the open-set protocol ([`crate::access::cohort`]): the rule
//! (cohort size `k`, weight) is chosen on the calibration part's own open-set rounds, and so is
//! its threshold: the normalised score has no per-comparison impostor tail to derive a
//! threshold from (it depends on the other persons of the gallery), so the threshold for a
//! target FPIR is read off the calibration part's non-mated searches at the largest gallery the
//! calibration part holds.

use serde::Serialize;

use super::openset::{Search, at_fpir};
use crate::access::cohort::CohortRule;

/// The rules tried: weights 0.25..1 of the mean of the next 1, 3, 10 or 30 persons.
pub fn grid() -> Vec<CohortRule> {
    let mut out = Vec::new();
    for k in [1usize, 3, 10, 30] {
        for weight in [0.25f32, 0.5, 0.75, 1.0] {
            out.push(CohortRule { k, weight });
        }
    }
    out
}

pub fn normalise(searches: &[Search], rule: &CohortRule) -> Vec<Search> {
    searches.iter().map(|s| s.normalised(rule)).collect()
}

/// One rule's oracle readout on the calibration part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tried {
    pub rule: CohortRule,
    /// FNIR at the target FPIR on the calibration part's rounds.
    pub fnir: f64,
}

/// What the calibration part chose.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    /// The gallery size of the calibration part's rounds.
    pub gallery: usize,
    pub target: f64,
    /// The raw score's FNIR at `target` on the same rounds.
    pub raw_fnir: f64,
    pub tried: Vec<Tried>,
    pub rule: CohortRule,
    /// The normalised-score threshold for each target FPIR (calibration part, non-mated).
    pub thresholds: Vec<(f64, f32)>,
}

/// Choose the rule with the lowest FNIR at FPIR `target` on `cal` (the calibration part's
/// searches), and its thresholds for `targets` on the same searches.
pub fn choose(cal: &[Search], gallery: usize, target: f64, targets: &[f64]) -> Choice {
    let raw_fnir = at_fpir(cal, target, 0.0).fnir;
    let tried: Vec<Tried> = grid()
        .into_iter()
        .map(|rule| Tried {
            rule,
            fnir: at_fpir(&normalise(cal, &rule), target, 0.0).fnir,
        })
        .collect();
    let mut best = tried[0];
    for t in &tried {
        if t.fnir < best.fnir - 1e-12 {
            best = *t;
        }
    }
    let n = normalise(cal, &best.rule);
    Choice {
        gallery,
        target,
        raw_fnir,
        tried,
        rule: best.rule,
        thresholds: targets
            .iter()
            .map(|&t| (t, at_fpir(&n, t, 0.0).threshold))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::cohort::MAX_K;

    fn s(mated: bool, best: f32, next: f32) -> Search {
        Search {
            mated,
            failed: None,
            correct: mated,
            best,
            second: next,
            others: [next; MAX_K],
            n_others: MAX_K as u8,
        }
    }

    #[test]
    fn a_cohort_separates_hubs_that_a_raw_threshold_cannot() {
        // Strangers that are hubs (high best, high next) and enrolled people who stand out
        // (same best scores, low next): no raw threshold separates them, the cohort does.
        let mut v = Vec::new();
        for i in 0..50 {
            let b = 0.5 + i as f32 * 0.005;
            v.push(s(false, b, b - 0.02));
            v.push(s(true, b, 0.1));
        }
        let c = choose(&v, 100, 0.0, &[0.0]);
        assert!(c.raw_fnir > 0.9, "{c:?}");
        assert_eq!(c.tried.iter().map(|t| t.fnir).fold(1.0, f64::min), 0.0);
        assert_eq!(at_fpir(&normalise(&v, &c.rule), 0.0, 0.0).fnir, 0.0);
        // The chosen threshold admits no stranger of these searches.
        let n = normalise(&v, &c.rule);
        let th = c.thresholds[0].1;
        assert!(n.iter().filter(|x| !x.mated).all(|x| x.best < th));
    }
}
