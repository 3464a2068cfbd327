//! The embedder's calibration from the calibration part of the open-set protocol: impostor
//! score tails (photos and visits) for the model card, and the margin (see [`super::openset`]).

use super::openset::{Person, Photo, Search, at_fpir, dot, probes};
use crate::access::calibration::{Calibration, Tail};

/// Impostor scores of the calibration part: every probe of one person against every template
/// of every other person (templates are single photos). `frames` > 1 fuses probe visits.
pub fn impostor_scores(people: &[&Person], frames: usize) -> Vec<f32> {
    let templates: Vec<(usize, &Vec<f32>)> = people
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            p.photos
                .iter()
                .filter_map(move |x| x.as_ref().ok().map(|e| (i, e)))
        })
        .collect();
    let mut out = Vec::new();
    for (i, p) in people.iter().enumerate() {
        let photos: Vec<&Photo> = p.photos.iter().collect();
        // A visit is up to `frames` photos of one person, as in the report part's rounds (a
        // person with one photo makes a one-frame visit there too).
        let ps = probes(&photos, frames.max(1));
        for probe in ps.iter().filter_map(|x| x.as_ref().ok()) {
            for (j, t) in &templates {
                if *j != i {
                    out.push(dot(probe, t));
                }
            }
        }
    }
    out
}

/// The measured tail of impostor scores at FMR 10^-1, 10^-1.5, ... as far as at least 20
/// comparisons lie beyond, then extended down to 1e-9 along an exponential tail fitted to the
/// measured points from 1e-3 down (the steepest-safe choice: the slope of the fit is used only
/// if it gives higher thresholds than the last measured segment's).
pub fn tail(mut scores: Vec<f32>, frames: Option<u32>) -> Option<Tail> {
    let n = scores.len();
    if n < 1000 {
        return None;
    }
    scores.sort_by(|a, b| b.total_cmp(a));
    let mut fmr = Vec::new();
    let mut score = Vec::new();
    let mut k = 2.0f64;
    loop {
        let f = 10f64.powf(-k / 2.0);
        let rank = (f * n as f64).floor() as usize;
        if rank < 20 {
            break;
        }
        fmr.push(f);
        score.push(scores[rank - 1]);
        k += 1.0;
    }
    if fmr.len() < 2 {
        return None;
    }
    // Least squares of score on log10 FMR over the points at FMR <= 1e-3.
    let pts: Vec<(f64, f64)> = fmr
        .iter()
        .zip(&score)
        .filter(|(f, _)| **f <= 1.0001e-3)
        .map(|(f, s)| (f.log10(), f64::from(*s)))
        .collect();
    let last_slope = {
        let m = fmr.len();
        (f64::from(score[m - 1]) - f64::from(score[m - 2]))
            / (fmr[m - 1].log10() - fmr[m - 2].log10())
    };
    let slope = if pts.len() >= 2 {
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / pts.len() as f64;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / pts.len() as f64;
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        // Scores rise as log FMR falls: slopes are negative; the more negative, the safer.
        (sxy / sxx).min(last_slope)
    } else {
        last_slope
    };
    let (mut lf, mut ls) = (
        fmr[fmr.len() - 1].log10(),
        f64::from(score[score.len() - 1]),
    );
    while lf > -9.0 + 1e-9 {
        lf -= 0.5;
        ls += slope * -0.5;
        fmr.push(10f64.powf(lf));
        score.push(ls as f32);
    }
    Some(Tail {
        fmr,
        score,
        comparisons: n as u64,
        frames,
    })
}

/// The calibration of the embedder, from the calibration part.
pub fn calibrate(people: &[&Person], protocol: String, visit_frames: usize) -> Option<Calibration> {
    let image = tail(impostor_scores(people, 1), None)?;
    let visit = if visit_frames > 1 {
        tail(
            impostor_scores(people, visit_frames),
            Some(visit_frames as u32),
        )
    } else {
        None
    };
    Some(Calibration {
        protocol,
        image,
        visit,
    })
}

/// The margin (from a small grid) with the lowest FNIR at FPIR `target` on these searches.
pub fn best_margin(searches: &[Search], target: f64) -> f32 {
    let grid = [0.0f32, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.15];
    let mut best = (f64::INFINITY, 0.0f32);
    for &m in &grid {
        let p = at_fpir(searches, target, m);
        if p.fnir < best.0 - 1e-12 {
            best = (p.fnir, m);
        }
    }
    best.1
}
