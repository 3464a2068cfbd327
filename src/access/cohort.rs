//! Cohort score normalisation against the gallery: the best person's cosine is judged against
//! the probe's own scores with the next enrolled persons.
//!
//! A probe that resembles many enrolled faces a little (a "hub": a turned or blurred face, a
//! common look) scores high with all of them, and its best score says less than the same score
//! of a probe that resembles nobody else. The cohort score subtracts a share `weight` of the
//! mean of the scores of the `k` next persons (ranks 2..k+1 of the search, one score per
//! person): `s1 - weight * mean(s2..s_{k+1})`. For a stranger, the top scores of a gallery are
//! order statistics of one impostor distribution, and the gap between the best and the next
//! ones changes little with the gallery's size; for an enrolled person the best score is their
//! own and stands out from the rest. The statistics come from the search itself (the gallery's
//! `k + 1` best persons): nothing is precomputed, and nothing goes stale as the gallery changes.

use serde::{Deserialize, Serialize};

/// Largest cohort a rule may ask for (the search returns this many persons after the best).
pub const MAX_K: usize = 32;

/// A cohort normalisation rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CohortRule {
    /// Persons after the best whose scores form the cohort (1..=32).
    pub k: usize,
    /// Share of the cohort's mean subtracted from the best score (0..=1; 0 is the raw score).
    pub weight: f32,
}

impl CohortRule {
    /// The normalised score of a search whose best person scored `best` and whose next persons
    /// scored `others` (best first, one score per person). With fewer than `k` other persons
    /// the cohort is the ones there are; with none it is the raw score (nothing to compare
    /// with: a gallery of one).
    pub fn score(&self, best: f32, others: &[f32]) -> f32 {
        let k = self.k.clamp(1, MAX_K).min(others.len());
        if k == 0 {
            return best;
        }
        let mean = others[..k].iter().sum::<f32>() / k as f32;
        best - self.weight * mean
    }

    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_K).contains(&self.k) {
            return Err(format!("cohort k = {} is outside 1..{MAX_K}", self.k));
        }
        if !(0.0..=1.0).contains(&self.weight) {
            return Err(format!("cohort weight = {} is outside 0..1", self.weight));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtracts_a_share_of_the_next_persons_mean() {
        let r = CohortRule { k: 2, weight: 0.5 };
        // Mean of 0.4 and 0.2 is 0.3; half of it off 0.8.
        assert!((r.score(0.8, &[0.4, 0.2, 0.9]) - 0.65).abs() < 1e-6);
        // A hub (high scores with everyone) loses more than a probe that stands out.
        let hub = r.score(0.7, &[0.65, 0.6]);
        let clear = r.score(0.7, &[0.2, 0.1]);
        assert!(clear > hub);
        // Fewer persons than k: the ones there are; none: the raw score.
        assert!((r.score(0.8, &[0.4]) - 0.6).abs() < 1e-6);
        assert_eq!(r.score(0.8, &[]), 0.8);
        assert!(r.check().is_ok());
        assert!(CohortRule { k: 0, weight: 0.5 }.check().is_err());
        assert!(CohortRule { k: 3, weight: 1.5 }.check().is_err());
    }
}
