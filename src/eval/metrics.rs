//! Verification metrics over scored pairs: the accuracy-maximising threshold, accuracy at a
//! threshold, TAR at a FAR, and the ROC curve.

/// One compared pair: its similarity, whether it is the same person, and its fold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f32,
    pub same: bool,
    pub fold: usize,
}

/// Fraction of pairs decided correctly with "same" meaning `score >= threshold`.
pub fn accuracy(pairs: &[Scored], threshold: f32) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    let right = pairs
        .iter()
        .filter(|p| (p.score >= threshold) == p.same)
        .count();
    right as f64 / pairs.len() as f64
}

/// The threshold that maximises accuracy on `pairs`: among the midpoints between consecutive
/// distinct scores, one with the most correct decisions (the median of those that tie, so
/// the choice does not hug a single pair).
pub fn best_threshold(pairs: &[Scored]) -> f32 {
    let mut sorted: Vec<Scored> = pairs.to_vec();
    sorted.sort_by(|a, b| a.score.total_cmp(&b.score));
    let Some(first) = sorted.first() else {
        return 0.0;
    };
    // A threshold below everything gets every "same" pair right and every other one wrong.
    let mut right = sorted.iter().filter(|p| p.same).count();
    let mut candidates = vec![(right, first.score - 1e-3)];
    let mut i = 0;
    while i < sorted.len() {
        let s = sorted[i].score;
        while i < sorted.len() && sorted[i].score == s {
            if sorted[i].same {
                right -= 1
            } else {
                right += 1
            }
            i += 1;
        }
        let next = sorted.get(i).map_or(s + 1e-3, |p| p.score);
        candidates.push((right, (s + next) / 2.0));
    }
    let best = candidates.iter().map(|c| c.0).max().unwrap_or(0);
    let ties: Vec<f32> = candidates
        .iter()
        .filter(|c| c.0 == best)
        .map(|c| c.1)
        .collect();
    ties[ties.len() / 2]
}

/// The true-accept rate at the lowest threshold whose false-accept rate is at most `far`,
/// and that threshold. With `n` impostor pairs the FAR resolution is `1/n`.
pub fn tar_at_far(pairs: &[Scored], far: f64) -> (f64, f32) {
    let mut impostors: Vec<f32> = pairs.iter().filter(|p| !p.same).map(|p| p.score).collect();
    let genuine: Vec<f32> = pairs.iter().filter(|p| p.same).map(|p| p.score).collect();
    if impostors.is_empty() || genuine.is_empty() {
        return (0.0, 0.0);
    }
    impostors.sort_by(|a, b| b.total_cmp(a));
    let allowed = (far * impostors.len() as f64).floor() as usize;
    // Accept strictly above the (allowed)-th highest impostor score.
    let threshold = next_up(impostors[allowed.min(impostors.len() - 1)]);
    let threshold = if allowed >= impostors.len() {
        f32::MIN
    } else {
        threshold
    };
    let tar = genuine.iter().filter(|s| **s >= threshold).count() as f64 / genuine.len() as f64;
    (tar, threshold)
}

fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    let bits = x.to_bits();
    let next = if x >= 0.0 {
        bits + 1
    } else if bits == 0x8000_0000 {
        1
    } else {
        bits - 1
    };
    f32::from_bits(next)
}

/// ROC curve: `(FAR, TAR)` at every distinct threshold, from strictest to most lenient.
pub fn roc(pairs: &[Scored]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<Scored> = pairs.to_vec();
    sorted.sort_by(|a, b| b.score.total_cmp(&a.score));
    let g = sorted.iter().filter(|p| p.same).count().max(1) as f64;
    let n = sorted.iter().filter(|p| !p.same).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < sorted.len() {
        let s = sorted[i].score;
        while i < sorted.len() && sorted[i].score == s {
            if sorted[i].same {
                tp += 1.0
            } else {
                fp += 1.0
            }
            i += 1;
        }
        out.push((fp / n, tp / g));
    }
    out
}

/// Mean and (population) standard deviation.
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64;
    (m, v.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(score: f32, same: bool) -> Scored {
        Scored {
            score,
            same,
            fold: 0,
        }
    }

    #[test]
    fn separable_pairs_get_a_threshold_between_the_classes() {
        let pairs = [s(0.1, false), s(0.2, false), s(0.6, true), s(0.9, true)];
        let t = best_threshold(&pairs);
        assert!(t > 0.2 && t < 0.6, "{t}");
        assert_eq!(accuracy(&pairs, t), 1.0);
    }

    #[test]
    fn overlapping_pairs_pick_the_accuracy_maximum() {
        // One impostor at 0.7 above a genuine at 0.5: best is 4/5 right.
        let pairs = [
            s(0.1, false),
            s(0.7, false),
            s(0.5, true),
            s(0.8, true),
            s(0.9, true),
        ];
        let t = best_threshold(&pairs);
        assert!((accuracy(&pairs, t) - 0.8).abs() < 1e-9, "{t}");
    }

    #[test]
    fn tar_at_far_zero_false_accepts() {
        let pairs = [
            s(0.3, false),
            s(0.5, false),
            s(0.4, true),
            s(0.6, true),
            s(0.8, true),
            s(0.9, true),
        ];
        let (tar, t) = tar_at_far(&pairs, 0.0);
        assert!(t > 0.5);
        assert!((tar - 0.75).abs() < 1e-9);
        let (tar, _) = tar_at_far(&pairs, 0.5);
        assert_eq!(tar, 1.0);
    }

    #[test]
    fn roc_runs_from_origin_to_one_one() {
        let pairs = [s(0.3, false), s(0.5, false), s(0.4, true), s(0.6, true)];
        let r = roc(&pairs);
        assert_eq!(r.first(), Some(&(0.0, 0.0)));
        assert_eq!(r.last(), Some(&(1.0, 1.0)));
        assert!(r.windows(2).all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1));
    }
}
