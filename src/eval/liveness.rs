//! Liveness evaluation (ISO/IEC 30107-3 terms): APCER per attack type (attacks accepted as
//! live), BPCER (live visits refused), per visit of several frames.
//!
//! Visits:
//! - the demo images of `antispoof/` (3 live, 2 prints, 2 phone-screen replays): each a visit
//!   of `frames` camera frames of the still (see [`attacks::visit`]); reported only, never used
//!   to choose anything;
//! - live photos from `lfw-dev/`, `att_faces/`, `deepface/`, `face_recognition/` (at most
//!   `per_set` of each, in a fixed hash order), each a live visit, and re-rendered as a print
//!   and a screen replay ([`attacks`]; synthetic: a regression test, not a benchmark).
//!
//! The photos are split in two by a hash of their path: **calibration** (fusion weights and
//! the threshold are chosen there) and **test** (reported). A visit where no frame has a face
//! is counted apart: an attack without a face cannot open the door, a live visit without one
//! fails at detection, not at liveness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::RgbImage;
use serde::Serialize;

use super::attacks::{self, Kind, Rng, seed_of};
use crate::vision::liveness::Visit;
use crate::vision::liveness::fuse::{CUE_CENTRES, CUES, Fusion, logit};
use crate::vision::{Models, Pipeline, VisionError, VisionParams, frame};

/// Features of a visit: mean over its frames of [logit(cnn), moiré, hf share, bezel, glare,
/// chroma].
pub const FEATURES: usize = 1 + CUES;
pub const FEATURE_NAMES: [&str; FEATURES] =
    ["cnn", "moire", "hf_share", "bezel", "glare", "chroma"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Calibration,
    Test,
    Demo,
}

/// One evaluated visit.
#[derive(Debug, Clone, Serialize)]
pub struct VisitResult {
    /// Source photo, relative to the faces directory.
    pub photo: String,
    pub set: String,
    /// `None` for a live visit, else the attack type.
    pub attack: Option<String>,
    pub split: Split,
    /// Frames with a face.
    pub frames: usize,
    /// `None` when no frame had a face.
    pub features: Option<[f32; FEATURES]>,
    /// The shipped fusion's visit score (0..1).
    pub shipped: Option<f32>,
}

pub struct Settings {
    pub frames: usize,
    pub per_set: usize,
    pub threads: usize,
}

const LIVE_SETS: [&str; 4] = ["lfw-dev", "att_faces", "deepface", "face_recognition"];

fn images_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                matches!(
                    x.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "pgm"
                )
            }) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

struct Job {
    photo: PathBuf,
    rel: String,
    set: String,
    attack: Option<Kind>,
    demo_attack: Option<String>,
    split: Split,
}

/// Build the visit list.
fn jobs(faces: &Path, per_set: usize) -> Vec<Job> {
    let mut jobs = Vec::new();
    let index = faces.join("antispoof/index.csv");
    if let Ok(text) = std::fs::read_to_string(&index) {
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split(',').collect();
            if cols.len() < 3 {
                continue;
            }
            let attack = match cols[1] {
                "live" => None,
                _ => Some(format!("{} (demo)", cols[2].replace('_', " "))),
            };
            jobs.push(Job {
                photo: faces.join("antispoof").join(cols[0]),
                rel: format!("antispoof/{}", cols[0]),
                set: "antispoof".into(),
                attack: None,
                demo_attack: attack,
                split: Split::Demo,
            });
        }
    }
    for set in LIVE_SETS {
        let mut photos = images_under(&faces.join(set));
        photos
            .sort_by_key(|p| seed_of(&p.to_string_lossy().replace(&*faces.to_string_lossy(), "")));
        for p in photos.into_iter().take(per_set) {
            let rel = p
                .strip_prefix(faces)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            // att_faces/ is grey (1994 scans): the network is a colour model and the door
            // camera is a colour camera, so the grey faces are reported (test part) but never
            // used to choose weights or thresholds.
            let split = if set != "att_faces"
                && (seed_of(&format!("split:{rel}")) >> 32).is_multiple_of(2)
            {
                Split::Calibration
            } else {
                Split::Test
            };
            for attack in [None, Some(Kind::Print), Some(Kind::Screen)] {
                jobs.push(Job {
                    photo: p.clone(),
                    rel: rel.clone(),
                    set: set.into(),
                    attack,
                    demo_attack: None,
                    split,
                });
            }
        }
    }
    jobs
}

fn run_job(
    pipeline: &mut Pipeline,
    job: &Job,
    settings: &Settings,
    live_config: &crate::vision::liveness::LivenessConfig,
) -> Result<VisitResult, VisionError> {
    let src = attacks::camera_size(frame::read_image(&job.photo, frame::DEFAULT_MAX_PIXELS)?);
    let mut rng = Rng::new(seed_of(&format!("{}:{:?}", job.rel, job.attack)));
    let scene: RgbImage = match job.attack {
        None => src,
        Some(Kind::Print) => attacks::print(&src, &mut rng),
        Some(Kind::Screen) => attacks::screen(&src, &mut rng),
    };
    let frames = attacks::visit(&scene, settings.frames, &mut rng);
    let mut visit = Visit::new(live_config);
    let mut sums = [0f64; FEATURES];
    let mut n = 0usize;
    for f in &frames {
        let dets = pipeline.detect(f)?;
        let Some(det) = dets.first() else {
            continue;
        };
        let Some(e) = pipeline.liveness(f, det) else {
            return Err(VisionError::Internal("no liveness model loaded".into()));
        };
        let e = e?;
        sums[0] += f64::from(logit(e.cnn));
        for (i, v) in e.cues.vector().iter().enumerate() {
            sums[1 + i] += f64::from(*v);
        }
        n += 1;
        visit.push(e);
    }
    let features = (n > 0).then(|| std::array::from_fn(|i| (sums[i] / n as f64) as f32));
    Ok(VisitResult {
        photo: job.rel.clone(),
        set: job.set.clone(),
        attack: job
            .demo_attack
            .clone()
            .or(job.attack.map(|k| k.name().to_owned())),
        split: job.split,
        frames: n,
        features,
        shipped: visit.score().map(|s| s.score),
    })
}

/// Run every visit through the vision pipeline with its liveness checker.
pub fn collect(
    models: &Models,
    params: &VisionParams,
    faces: &Path,
    settings: &Settings,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<VisitResult>, VisionError> {
    let live_config = models
        .liveness
        .as_ref()
        .map(|l| l.config.clone())
        .ok_or_else(|| VisionError::Internal("no liveness model loaded".into()))?;
    let jobs = jobs(faces, settings.per_set);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<VisitResult, String>)>> = Mutex::new(Vec::new());
    let threads = settings.threads.max(1);
    std::thread::scope(|s| -> Result<(), VisionError> {
        let mut handles = Vec::new();
        for _ in 0..threads {
            let mut pipeline = Pipeline::new(models, params.clone())?;
            let (jobs, next, done, results, live_config) =
                (&jobs, &next, &done, &results, &live_config);
            handles.push(s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        break;
                    };
                    let r = run_job(&mut pipeline, job, settings, live_config)
                        .map_err(|e| format!("{}: {e}", job.rel));
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, r));
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, jobs.len());
                }
            }));
        }
        for h in handles {
            let _ = h.join();
        }
        Ok(())
    })?;
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut out = Vec::new();
    for (_, r) in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => tracing::warn!(error = %e, "visit skipped"),
        }
    }
    Ok(out)
}

/// A way of scoring a visit from its features (log-odds of live): linear
/// (`bias + w·x`), or the shipped lower-of-two rule when `cnn_offset` is set:
/// `min(x[0] − cnn_offset, bias + Σ_{i≥1} w_i·x_i)` (the second term only when a cue is
/// weighted).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scorer {
    pub bias: f32,
    pub w: [f32; FEATURES],
    pub cnn_offset: Option<f32>,
}

impl Scorer {
    pub fn only(i: usize, sign: f32) -> Scorer {
        let mut w = [0f32; FEATURES];
        w[i] = sign;
        Scorer {
            bias: 0.0,
            w,
            cnn_offset: None,
        }
    }

    #[allow(clippy::needless_range_loop)] // parallel arrays indexed together
    pub fn from_fusion(f: &Fusion) -> Scorer {
        let mut w = [0f32; FEATURES];
        let mut bias = f.cue_bias;
        for i in 0..CUES {
            w[1 + i] = f.cues[i];
            bias -= f.cues[i] * CUE_CENTRES[i];
        }
        Scorer {
            bias,
            w,
            cnn_offset: Some(f.cnn_offset),
        }
    }

    /// As the code's fusion (cue centres folded into the bias).
    #[allow(clippy::needless_range_loop)] // parallel arrays indexed together
    pub fn to_fusion(&self, base: &Fusion) -> Fusion {
        let mut f = *base;
        f.cnn_offset = self.cnn_offset.unwrap_or(0.0);
        let mut bias = self.bias;
        for i in 0..CUES {
            f.cues[i] = self.w[1 + i];
            bias += self.w[1 + i] * CUE_CENTRES[i];
        }
        f.cue_bias = bias;
        f
    }

    fn cue_part(&self, x: &[f32; FEATURES]) -> Option<f32> {
        self.w[1..].iter().any(|w| *w != 0.0).then(|| {
            self.bias
                + self.w[1..]
                    .iter()
                    .zip(&x[1..])
                    .map(|(w, v)| w * v)
                    .sum::<f32>()
        })
    }

    pub fn score(&self, x: &[f32; FEATURES]) -> f32 {
        match self.cnn_offset {
            None => self.bias + self.w.iter().zip(x).map(|(w, v)| w * v).sum::<f32>(),
            Some(off) => {
                let a = x[0] - off;
                self.cue_part(x).map_or(a, |b| a.min(b))
            }
        }
    }
}

/// The lower-of-two scorer for the cues in `mask` (index 0 ignored): a logistic model of those
/// cues fitted on `cal`, and both scores shifted so that each alone refuses at most
/// `per_part_bpcer` of the live calibration visits.
pub fn veto(cal: &[&VisitResult], mask: [bool; FEATURES], per_part_bpcer: f64) -> Scorer {
    let live: Vec<[f32; FEATURES]> = cal
        .iter()
        .filter(|v| v.attack.is_none())
        .filter_map(|v| v.features)
        .collect();
    let cnn: Vec<f32> = live.iter().map(|f| f[0]).collect();
    let cnn_offset = threshold_at_bpcer(&cnn, per_part_bpcer);
    let mut m = mask;
    m[0] = false;
    let mut s = if m.iter().any(|b| *b) {
        fit(cal, m)
    } else {
        Scorer::only(0, 0.0)
    };
    s.w[0] = 0.0;
    if m.iter().any(|b| *b) {
        let cue: Vec<f32> = live.iter().map(|f| s.score(f)).collect();
        s.bias -= threshold_at_bpcer(&cue, per_part_bpcer);
    }
    s.cnn_offset = Some(cnn_offset);
    s
}

#[allow(clippy::needless_range_loop)] // parallel arrays indexed together
/// Class-balanced L2-regularised logistic regression on the features in `mask` (live = 1).
pub fn fit(visits: &[&VisitResult], mask: [bool; FEATURES]) -> Scorer {
    let data: Vec<([f32; FEATURES], f32)> = visits
        .iter()
        .filter_map(|v| {
            v.features
                .map(|f| (f, if v.attack.is_none() { 1.0 } else { 0.0 }))
        })
        .collect();
    if data.is_empty() {
        return Scorer::only(0, 1.0);
    }
    let n_live = data.iter().filter(|d| d.1 > 0.5).count().max(1) as f32;
    let n_att = data.iter().filter(|d| d.1 < 0.5).count().max(1) as f32;
    // Standardise.
    let mut mu = [0f32; FEATURES];
    let mut sd = [1f32; FEATURES];
    for i in 0..FEATURES {
        let m = data.iter().map(|d| d.0[i]).sum::<f32>() / data.len() as f32;
        let v = data.iter().map(|d| (d.0[i] - m).powi(2)).sum::<f32>() / data.len() as f32;
        mu[i] = m;
        sd[i] = v.sqrt().max(1e-6);
    }
    let (mut w, mut b) = ([0f32; FEATURES], 0f32);
    let lambda = 1e-3;
    let rate = 0.5;
    for _ in 0..3000 {
        let mut gw = [0f32; FEATURES];
        let mut gb = 0f32;
        let mut total = 0f32;
        for (x, y) in &data {
            let weight = if *y > 0.5 { 0.5 / n_live } else { 0.5 / n_att };
            let mut z = b;
            for i in 0..FEATURES {
                if mask[i] {
                    z += w[i] * (x[i] - mu[i]) / sd[i];
                }
            }
            let p = 1.0 / (1.0 + (-z).exp());
            let g = (p - y) * weight;
            for i in 0..FEATURES {
                if mask[i] {
                    gw[i] += g * (x[i] - mu[i]) / sd[i];
                }
            }
            gb += g;
            total += weight;
        }
        for i in 0..FEATURES {
            if mask[i] {
                w[i] -= rate * (gw[i] / total + lambda * w[i]);
            }
        }
        b -= rate * gb / total;
    }
    let mut out = Scorer {
        bias: b,
        w: [0.0; FEATURES],
        cnn_offset: None,
    };
    for i in 0..FEATURES {
        if mask[i] {
            out.w[i] = w[i] / sd[i];
            out.bias -= w[i] * mu[i] / sd[i];
        }
    }
    out
}

/// The threshold on the scores of live visits that refuses at most `bpcer` of them: the
/// largest `t` with `#(live < t) <= bpcer · #live`.
pub fn threshold_at_bpcer(live: &[f32], bpcer: f64) -> f32 {
    let mut s: Vec<f32> = live.to_vec();
    s.sort_by(f32::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let k = (bpcer * s.len() as f64).floor() as usize;
    s[k.min(s.len() - 1)]
}

/// Error rates at a threshold (accepted = score >= t).
#[derive(Debug, Clone, Serialize)]
pub struct Rates {
    pub threshold: f32,
    pub bpcer: f64,
    pub live: usize,
    pub live_refused: usize,
    /// Attack type → (accepted, total).
    pub apcer: BTreeMap<String, (usize, usize)>,
    /// Live set → (refused, total).
    pub bpcer_per_set: BTreeMap<String, (usize, usize)>,
    /// Visits without a face in any frame (not scored): live, attacks.
    pub no_face_live: usize,
    pub no_face_attacks: usize,
}

pub fn rates(
    visits: &[&VisitResult],
    scorer: &dyn Fn(&VisitResult) -> Option<f32>,
    t: f32,
) -> Rates {
    let mut r = Rates {
        threshold: t,
        bpcer: 0.0,
        live: 0,
        live_refused: 0,
        apcer: BTreeMap::new(),
        bpcer_per_set: BTreeMap::new(),
        no_face_live: 0,
        no_face_attacks: 0,
    };
    for v in visits {
        let s = scorer(v);
        match (&v.attack, s) {
            (None, None) => r.no_face_live += 1,
            (Some(_), None) => r.no_face_attacks += 1,
            (None, Some(s)) => {
                r.live += 1;
                let e = r.bpcer_per_set.entry(v.set.clone()).or_insert((0, 0));
                e.1 += 1;
                if s < t {
                    r.live_refused += 1;
                    e.0 += 1;
                }
            }
            (Some(a), Some(s)) => {
                let e = r.apcer.entry(a.clone()).or_insert((0, 0));
                e.1 += 1;
                if s >= t {
                    e.0 += 1;
                }
            }
        }
    }
    r.bpcer = r.live_refused as f64 / r.live.max(1) as f64;
    r
}

/// Area under the ROC (live scored higher = 1).
pub fn auc(live: &[f32], attack: &[f32]) -> f64 {
    if live.is_empty() || attack.is_empty() {
        return f64::NAN;
    }
    let mut wins = 0f64;
    for l in live {
        for a in attack {
            wins += if l > a {
                1.0
            } else if l == a {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (live.len() * attack.len()) as f64
}

/// DET points (BPCER, APCER over all attacks) for every threshold.
pub fn det(live: &[f32], attack: &[f32]) -> Vec<(f64, f64)> {
    let mut ts: Vec<f32> = live.iter().chain(attack).copied().collect();
    ts.sort_by(f32::total_cmp);
    ts.dedup();
    let mut out = Vec::with_capacity(ts.len() + 2);
    let frac = |v: &[f32], f: &dyn Fn(f32) -> bool| {
        v.iter().filter(|&&x| f(x)).count() as f64 / v.len().max(1) as f64
    };
    for t in ts {
        let bpcer = frac(live, &|x| x < t);
        let apcer = frac(attack, &|x| x >= t);
        out.push((bpcer, apcer));
    }
    out
}
