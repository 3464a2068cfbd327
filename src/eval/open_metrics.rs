//! Open-set metrics over searches: FPIR and FNIR at a threshold and margin, the DET curve, the
//! oracle readout at a target FPIR, error counts (see [`super::openset`]).

use serde::Serialize;

use super::openset::{Failure, Search};

/// FPIR and FNIR at one threshold and margin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub threshold: f32,
    pub fpir: f64,
    pub fnir: f64,
}

/// Counts behind the rates.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Counts {
    pub mated: usize,
    pub non_mated: usize,
    /// Mated searches with no usable face (no face, refused quality).
    pub mated_no_face: usize,
    pub mated_refused: usize,
    pub non_mated_no_face: usize,
    pub non_mated_refused: usize,
}

pub fn counts(searches: &[Search]) -> Counts {
    let mut c = Counts::default();
    for s in searches {
        match (s.mated, s.failed) {
            (true, f) => {
                c.mated += 1;
                match f {
                    Some(Failure::NoFace) => c.mated_no_face += 1,
                    Some(Failure::Refused) => c.mated_refused += 1,
                    None => {}
                }
            }
            (false, f) => {
                c.non_mated += 1;
                match f {
                    Some(Failure::NoFace) => c.non_mated_no_face += 1,
                    Some(Failure::Refused) => c.non_mated_refused += 1,
                    None => {}
                }
            }
        }
    }
    c
}

/// FPIR and FNIR at `threshold` with `margin`. A mated search whose best person is wrong is a
/// miss (and, if accepted, counted in [`wrong_person`]).
pub fn point(searches: &[Search], threshold: f32, margin: f32) -> Point {
    let (mut m, mut miss, mut n, mut fp) = (0usize, 0usize, 0usize, 0usize);
    for s in searches {
        let acc = s.accepted(threshold, margin);
        if s.mated {
            m += 1;
            if !(acc && s.correct) {
                miss += 1;
            }
        } else {
            n += 1;
            if acc {
                fp += 1;
            }
        }
    }
    Point {
        threshold,
        fpir: fp as f64 / n.max(1) as f64,
        fnir: miss as f64 / m.max(1) as f64,
    }
}

/// Mated searches admitted as somebody else at `threshold` and `margin`.
pub fn wrong_person(searches: &[Search], threshold: f32, margin: f32) -> usize {
    searches
        .iter()
        .filter(|s| s.mated && !s.correct && s.accepted(threshold, margin))
        .count()
}

/// The DET curve: `(FPIR, FNIR)` at every threshold where FPIR changes, strictest first.
pub fn det(searches: &[Search], margin: f32) -> Vec<Point> {
    let mut ts: Vec<f32> = searches
        .iter()
        .filter(|s| s.failed.is_none())
        .map(|s| s.best)
        .collect();
    ts.sort_by(|a, b| b.total_cmp(a));
    ts.dedup();
    // At most ~800 points: every k-th score, plus the top of the non-mated scores exactly.
    let step = (ts.len() / 800).max(1);
    let mut out: Vec<Point> = ts
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0)
        .map(|(_, &t)| point(searches, t, margin))
        .collect();
    let mut top: Vec<f32> = searches
        .iter()
        .filter(|s| !s.mated && s.failed.is_none())
        .map(|s| s.best)
        .collect();
    top.sort_by(|a, b| b.total_cmp(a));
    for &t in top.iter().take(60) {
        out.push(point(searches, next_up(t), margin));
        out.push(point(searches, t, margin));
    }
    out.sort_by(|a, b| b.threshold.total_cmp(&a.threshold));
    out
}

fn next_up(x: f32) -> f32 {
    f32::from_bits(if x >= 0.0 {
        x.to_bits() + 1
    } else {
        x.to_bits() - 1
    })
}

/// The lowest threshold whose FPIR is at most `target` (chosen on these same searches: an
/// oracle readout of the DET curve), and FNIR there.
pub fn at_fpir(searches: &[Search], target: f64, margin: f32) -> Point {
    let mut non: Vec<f32> = searches
        .iter()
        .filter(|s| !s.mated && s.accepted(-1.0, margin))
        .map(|s| s.best)
        .collect();
    non.sort_by(|a, b| b.total_cmp(a));
    let n = searches.iter().filter(|s| !s.mated).count();
    let allowed = (target * n as f64).floor() as usize;
    let t = match non.get(allowed) {
        Some(&s) => next_up(s),
        None => -1.0,
    };
    point(searches, t, margin)
}
