//! The liveness evaluation's report: which signals pay (each alone, then the network plus one
//! cue at a time, then a greedy fusion chosen on the calibration part), the shipped fusion at
//! the configured threshold and at the calibration threshold, per attack type, on the test
//! part and on the demo images.

use std::fmt::Write;

use serde::Serialize;

use super::liveness::{
    FEATURE_NAMES, FEATURES, Rates, Scorer, Split, VisitResult, auc, fit, rates,
    threshold_at_bpcer, veto,
};
use crate::vision::liveness::fuse::{Fusion, logit, sigmoid};

/// Target BPCER on the calibration part when a threshold is chosen.
pub const TARGET_BPCER: f64 = 0.02;
/// A cue joins the fusion only when it lowers the calibration APCER by at least this much.
pub const MIN_GAIN: f64 = 0.005;

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub name: String,
    pub scorer: Scorer,
    /// Chosen on the calibration part (BPCER <= 2% there), in log-odds.
    pub threshold: f32,
    pub calibration: Rates,
    pub test: Rates,
    pub demo: Rates,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub visits: usize,
    /// Per feature: (AUC on calibration, AUC on test), sign chosen on calibration.
    pub auc: Vec<(String, f64, f64)>,
    pub candidates: Vec<Candidate>,
    /// The greedy fusion (its fitted weights, as the code's `Fusion`).
    pub chosen: Candidate,
    pub chosen_fusion: Fusion,
    /// The shipped weights at the configured threshold (a probability).
    pub shipped_threshold: f32,
    pub shipped_test: Rates,
    pub shipped_demo: Rates,
    pub shipped_calibration: Rates,
}

fn part(visits: &[VisitResult], split: Split) -> Vec<&VisitResult> {
    visits.iter().filter(|v| v.split == split).collect()
}

fn overall_apcer(r: &Rates, synthetic_only: bool) -> f64 {
    let (a, n) = r
        .apcer
        .iter()
        .filter(|(k, _)| !synthetic_only || k.contains("synthetic"))
        .fold((0, 0), |(a, n), (_, (x, y))| (a + x, n + y));
    a as f64 / n.max(1) as f64
}

fn candidate(name: &str, scorer: Scorer, visits: &[VisitResult]) -> Candidate {
    let cal = part(visits, Split::Calibration);
    let f = |v: &VisitResult| v.features.map(|x| scorer.score(&x));
    let live: Vec<f32> = cal
        .iter()
        .filter(|v| v.attack.is_none())
        .filter_map(|v| f(v))
        .collect();
    let t = threshold_at_bpcer(&live, TARGET_BPCER);
    Candidate {
        name: name.into(),
        scorer,
        threshold: t,
        calibration: rates(&cal, &f, t),
        test: rates(&part(visits, Split::Test), &f, t),
        demo: rates(&part(visits, Split::Demo), &f, t),
    }
}

pub fn report(visits: &[VisitResult], shipped: &Fusion, shipped_threshold: f32) -> Report {
    let cal = part(visits, Split::Calibration);
    let test = part(visits, Split::Test);
    let scores = |vs: &[&VisitResult], i: usize, live: bool| -> Vec<f32> {
        vs.iter()
            .filter(|v| v.attack.is_none() == live)
            .filter_map(|v| v.features.map(|f| f[i]))
            .collect()
    };
    let mut aucs = Vec::new();
    for (i, name) in FEATURE_NAMES.iter().enumerate() {
        let c = auc(&scores(&cal, i, true), &scores(&cal, i, false));
        let t = auc(&scores(&test, i, true), &scores(&test, i, false));
        // Oriented on calibration: a cue that is lower for live faces is flipped.
        let (c, t) = if c < 0.5 { (1.0 - c, 1.0 - t) } else { (c, t) };
        aucs.push((name.to_string(), c, t));
    }

    let mut candidates = vec![candidate("cnn alone", Scorer::only(0, 1.0), visits)];
    for i in 1..FEATURES {
        let mut mask = [false; FEATURES];
        mask[i] = true;
        candidates.push(candidate(
            &format!("{} alone (fitted)", FEATURE_NAMES[i]),
            fit(&cal, mask),
            visits,
        ));
        mask[0] = true;
        candidates.push(candidate(
            &format!("cnn + {} (fitted)", FEATURE_NAMES[i]),
            fit(&cal, mask),
            visits,
        ));
    }
    candidates.push(candidate(
        "all (fitted)",
        fit(&cal, [true; FEATURES]),
        visits,
    ));

    // The shipped rule (network and cues must both say live), its cues chosen by greedy
    // forward selection on the calibration part only: a cue joins when it lowers the
    // calibration APCER (synthetic attacks) by MIN_GAIN at the calibration threshold.
    let per_part = TARGET_BPCER / 2.0;
    let mut mask = [false; FEATURES];
    let mut best = candidate(
        "network alone (offset)",
        veto(&cal, mask, TARGET_BPCER),
        visits,
    );
    loop {
        let mut improved = None;
        for i in 1..FEATURES {
            if mask[i] {
                continue;
            }
            let mut m = mask;
            m[i] = true;
            let c = candidate("", veto(&cal, m, per_part), visits);
            let gain = overall_apcer(&best.calibration, true) - overall_apcer(&c.calibration, true);
            if gain >= MIN_GAIN && improved.as_ref().is_none_or(|(g, _, _)| gain > *g) {
                improved = Some((gain, i, c));
            }
        }
        match improved {
            Some((_, i, c)) => {
                mask[i] = true;
                best = c;
            }
            None => break,
        }
    }
    let names: Vec<&str> = (1..FEATURES)
        .filter(|&i| mask[i])
        .map(|i| FEATURE_NAMES[i])
        .collect();
    best.name = format!(
        "network AND cues [{}] (lower of two, greedy on calibration)",
        names.join(" + ")
    );
    let chosen_fusion = best.scorer.to_fusion(shipped);

    let shipped_scorer = |v: &VisitResult| v.shipped;
    let p = shipped_threshold;
    Report {
        visits: visits.len(),
        auc: aucs,
        candidates,
        chosen: best,
        chosen_fusion,
        shipped_threshold: p,
        shipped_test: rates(&test, &shipped_scorer, p),
        shipped_demo: rates(&part(visits, Split::Demo), &shipped_scorer, p),
        shipped_calibration: rates(&cal, &shipped_scorer, p),
    }
}

fn pct(a: usize, n: usize) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.1}% ({a}/{n})", 100.0 * a as f64 / n as f64)
    }
}

fn rates_line(r: &Rates) -> String {
    let mut s = format!("BPCER {}", pct(r.live_refused, r.live));
    if r.bpcer_per_set.len() > 1 {
        let sets: Vec<String> = r
            .bpcer_per_set
            .iter()
            .map(|(k, (a, n))| format!("{k} {}", pct(*a, *n)))
            .collect();
        let _ = write!(s, " [{}]", sets.join(", "));
    }
    for (k, (a, n)) in &r.apcer {
        let _ = write!(s, "; APCER {k} {}", pct(*a, *n));
    }
    if r.no_face_live + r.no_face_attacks > 0 {
        let _ = write!(
            s,
            "; no face: {} live, {} attacks",
            r.no_face_live, r.no_face_attacks
        );
    }
    s
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} visits", self.visits);
        let _ = writeln!(s, "\nEach signal alone, AUC (calibration / test):");
        for (name, c, t) in &self.auc {
            let _ = writeln!(s, "  {name:10} {c:.3} / {t:.3}");
        }
        let _ = writeln!(
            s,
            "\nThreshold chosen on calibration for BPCER <= {:.0}% there; rates on test, then demo:",
            TARGET_BPCER * 100.0
        );
        for c in self.candidates.iter().chain(std::iter::once(&self.chosen)) {
            let _ = writeln!(s, "  {}", c.name);
            let _ = writeln!(s, "    test: {}", rates_line(&c.test));
            let _ = writeln!(s, "    demo: {}", rates_line(&c.demo));
        }
        let f = &self.chosen_fusion;
        let _ = writeln!(
            s,
            "\nChosen rule as the code's Fusion: cnn_offset: {:.4}, cue_bias: {:.4}, cues: {:?}; \
             its calibration threshold {:.4} (log-odds) = {:.4} (probability)",
            f.cnn_offset,
            f.cue_bias,
            f.cues,
            self.chosen.threshold,
            sigmoid(self.chosen.threshold)
        );
        let _ = writeln!(
            s,
            "\nShipped fusion at the configured threshold {:.4} (log-odds {:.3}):",
            self.shipped_threshold,
            logit(self.shipped_threshold)
        );
        let _ = writeln!(
            s,
            "  calibration: {}",
            rates_line(&self.shipped_calibration)
        );
        let _ = writeln!(s, "  test:        {}", rates_line(&self.shipped_test));
        let _ = writeln!(s, "  demo:        {}", rates_line(&self.shipped_demo));
        s
    }
}
