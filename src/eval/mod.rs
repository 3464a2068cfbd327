//! Accuracy harness: the LFW verification protocol over the real vision pipeline.
//!
//! - A 10-fold file (`pairs.txt`, View 2): the threshold for each fold is chosen on the other
//!   nine, accuracy is the mean over folds.
//! - A View 1 file with its training file (`pairsDevTest.txt` + `pairsDevTrain.txt`): the
//!   threshold is chosen on the training pairs and accuracy reported on the test pairs.
//! - A single file alone: the threshold is chosen on the same pairs (reported as optimistic).
//!
//! A pair whose image file is missing is skipped and listed. A pair where no face is found
//! (or the image cannot be read) is kept and counted as a non-match at every threshold, as a
//! door would: a false reject for a same-person pair, a correct reject for a different-person
//! pair (never a false accept).

pub mod attacks;
pub mod face_size;
pub mod lfw;
pub mod liveness;
pub mod liveness_report;
pub mod metrics;
pub mod open_calibrate;
pub mod open_cohort;
pub mod open_data;
pub mod open_metrics;
pub mod open_report;
pub mod openset;
pub mod plot;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub use lfw::{Pair, PairsFile};
use metrics::Scored;

use crate::vision::{Embedding, Models, Pipeline, VisionError, VisionParams, frame};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read pairs file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pairs file {path} line {line}: {reason}")]
    Format {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(transparent)]
    Vision(#[from] VisionError),
}

/// What happened to one image.
#[derive(Debug, Clone)]
pub enum ImageOutcome {
    Embedded(Embedding),
    /// The file does not exist: pairs naming it are skipped.
    Missing,
    /// Unreadable, not an image, or no face found: pairs naming it count as non-matches.
    Failed(String),
    /// A face, but refused by the quality limits (too small, turned): a non-match too.
    Refused(String),
}

/// Embed the face nearest the centre of each image (LFW centres the named person), with
/// `threads` pipelines in parallel.
pub fn embed_images(
    models: &Models,
    params: &VisionParams,
    paths: &[PathBuf],
    threads: usize,
    max_pixels: u64,
) -> Result<HashMap<PathBuf, ImageOutcome>, VisionError> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(HashMap::with_capacity(paths.len()));
    let first_error: Mutex<Option<VisionError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut pipeline = match Pipeline::new(models, params.clone()) {
                    Ok(p) => p,
                    Err(e) => {
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let outcome = embed_centre_face(&mut pipeline, path, max_pixels);
                    if let Ok(mut r) = results.lock() {
                        r.insert(path.clone(), outcome);
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_default())
}

fn embed_centre_face(pipeline: &mut Pipeline, path: &Path, max_pixels: u64) -> ImageOutcome {
    if !path.exists() {
        return ImageOutcome::Missing;
    }
    let img = match frame::read_image(path, max_pixels) {
        Ok(i) => i,
        Err(e) => return ImageOutcome::Failed(e.to_string()),
    };
    let dets = match pipeline.detect(&img) {
        Ok(d) => d,
        Err(e) => return ImageOutcome::Failed(format!("{}: {e}", path.display())),
    };
    let (cx, cy) = (img.width() as f32 / 2.0, img.height() as f32 / 2.0);
    let Some(det) = dets.iter().min_by(|a, b| {
        let d = |d: &crate::vision::Detection| {
            let c = d.bbox.centre();
            (c.x - cx).powi(2) + (c.y - cy).powi(2)
        };
        d(a).total_cmp(&d(b))
    }) else {
        return ImageOutcome::Failed(format!("no face found in {}", path.display()));
    };
    match pipeline.describe(&img, det) {
        Ok(face) => match face.embedding {
            Ok(e) => ImageOutcome::Embedded(e),
            Err(r) => ImageOutcome::Refused(format!("{}: {r}", path.display())),
        },
        Err(e) => ImageOutcome::Failed(format!("{}: {e}", path.display())),
    }
}

/// How the threshold was chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Protocol {
    TenFold,
    TrainTest { train: PathBuf },
    SameSet,
}

/// The result of one evaluation.
#[derive(Debug, Clone)]
pub struct Report {
    pub protocol: Protocol,
    pub pairs_file: PathBuf,
    /// Test pairs in the file.
    pub pairs: usize,
    /// Pairs scored (including failures counted as errors).
    pub evaluated: usize,
    /// Pairs left out, with the reason (missing image files).
    pub skipped: Vec<String>,
    /// Pairs counted as non-matches because a face could not be embedded, with the reason.
    pub failures: Vec<String>,
    pub accuracy: f64,
    /// Standard deviation over folds (10-fold only).
    pub accuracy_std: Option<f64>,
    /// Threshold used for the reported accuracy (mean over folds for 10-fold).
    pub threshold: f32,
    /// TAR at FAR ≤ 1e-3 over the test pairs, its threshold, and the number of impostor pairs
    /// (the FAR resolution is one over it).
    pub tar_at_far_1e3: f64,
    pub tar_threshold: f32,
    pub impostors: usize,
    pub genuine_mean: f64,
    pub impostor_mean: f64,
    pub roc: Vec<(f64, f64)>,
    pub images: usize,
    pub seconds: f64,
}

/// The score of a pair in which a face could not be embedded: under every threshold.
pub const NO_MATCH: f32 = -2.0;

/// Score every pair: cosine of the two embeddings, or a failure scored as a non-match.
fn score_pairs(
    pairs: &[Pair],
    root: &Path,
    images: &HashMap<PathBuf, ImageOutcome>,
) -> (Vec<Scored>, Vec<String>, Vec<String>) {
    let (mut scored, mut skipped, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for p in pairs {
        let (a, b) = (root.join(&p.a), root.join(&p.b));
        let get = |k: &PathBuf| images.get(k).cloned().unwrap_or(ImageOutcome::Missing);
        let (ea, eb) = (get(&a), get(&b));
        let describe = || format!("line {} ({} / {})", p.line, p.a.display(), p.b.display());
        match (ea, eb) {
            (ImageOutcome::Missing, _) | (_, ImageOutcome::Missing) => {
                let missing = if !a.exists() { &p.a } else { &p.b };
                skipped.push(format!(
                    "{}: image file {} is missing",
                    describe(),
                    missing.display()
                ));
            }
            (ImageOutcome::Embedded(x), ImageOutcome::Embedded(y)) => {
                scored.push(Scored {
                    score: x.cosine(&y),
                    same: p.same,
                    fold: p.fold,
                });
            }
            (ImageOutcome::Failed(r) | ImageOutcome::Refused(r), _)
            | (_, ImageOutcome::Failed(r) | ImageOutcome::Refused(r)) => {
                failures.push(format!("{}: {r}", describe()));
                // A non-match at every threshold in [-1, 1]: nothing to compare is never an
                // accept (a false reject if the pair is the same person).
                scored.push(Scored {
                    score: NO_MATCH,
                    same: p.same,
                    fold: p.fold,
                });
            }
        }
    }
    (scored, skipped, failures)
}

/// Run the LFW protocol on `test` (and `train` for View 1), images under `root`.
pub fn evaluate(
    models: &Models,
    params: &VisionParams,
    test: &PairsFile,
    train: Option<&PairsFile>,
    root: &Path,
    threads: usize,
    max_pixels: u64,
) -> Result<Report, EvalError> {
    let started = Instant::now();
    let mut paths: Vec<PathBuf> = test
        .pairs
        .iter()
        .chain(train.iter().flat_map(|t| t.pairs.iter()))
        .flat_map(|p| [root.join(&p.a), root.join(&p.b)])
        .collect();
    paths.sort();
    paths.dedup();
    tracing::info!(images = paths.len(), threads, "embedding images");
    let images = embed_images(models, params, &paths, threads, max_pixels)?;

    let (scored, skipped, failures) = score_pairs(&test.pairs, root, &images);
    let (protocol, accuracy, accuracy_std, threshold) = if test.folds > 1 {
        let mut accs = Vec::new();
        let mut thresholds = Vec::new();
        for fold in 0..test.folds {
            let (held, rest): (Vec<Scored>, Vec<Scored>) =
                scored.iter().partition(|s| s.fold == fold);
            let t = metrics::best_threshold(&rest);
            accs.push(metrics::accuracy(&held, t));
            thresholds.push(f64::from(t));
        }
        let (m, sd) = metrics::mean_std(&accs);
        (
            Protocol::TenFold,
            m,
            Some(sd),
            metrics::mean_std(&thresholds).0 as f32,
        )
    } else if let Some(train) = train {
        let (train_scored, _, _) = score_pairs(&train.pairs, root, &images);
        let t = metrics::best_threshold(&train_scored);
        (
            Protocol::TrainTest {
                train: train.path.clone(),
            },
            metrics::accuracy(&scored, t),
            None,
            t,
        )
    } else {
        let t = metrics::best_threshold(&scored);
        (Protocol::SameSet, metrics::accuracy(&scored, t), None, t)
    };
    let (tar, tar_threshold) = metrics::tar_at_far(&scored, 1e-3);
    let mean_of = |same: bool| {
        let v: Vec<f64> = scored
            .iter()
            .filter(|s| s.same == same && s.score.abs() <= 1.0)
            .map(|s| f64::from(s.score))
            .collect();
        metrics::mean_std(&v).0
    };
    Ok(Report {
        protocol,
        pairs_file: test.path.clone(),
        pairs: test.pairs.len(),
        evaluated: scored.len(),
        skipped,
        failures,
        accuracy,
        accuracy_std,
        threshold,
        tar_at_far_1e3: tar,
        tar_threshold,
        impostors: scored.iter().filter(|s| !s.same).count(),
        genuine_mean: mean_of(true),
        impostor_mean: mean_of(false),
        roc: metrics::roc(&scored),
        images: paths.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = match &self.protocol {
            Protocol::TenFold => {
                "10-fold cross-validation (threshold chosen on the other 9 folds)".to_string()
            }
            Protocol::TrainTest { train } => format!("threshold chosen on {}", train.display()),
            Protocol::SameSet => {
                "threshold chosen on these same pairs (optimistic: no held-out split)".to_string()
            }
        };
        writeln!(f, "pairs file      {}", self.pairs_file.display())?;
        writeln!(f, "protocol        {protocol}")?;
        writeln!(
            f,
            "pairs           {} in file, {} evaluated, {} skipped, {} counted as non-matches (no usable face)",
            self.pairs,
            self.evaluated,
            self.skipped.len(),
            self.failures.len()
        )?;
        match self.accuracy_std {
            Some(sd) => writeln!(
                f,
                "accuracy        {:.2}% ± {:.2}",
                self.accuracy * 100.0,
                sd * 100.0
            )?,
            None => writeln!(f, "accuracy        {:.2}%", self.accuracy * 100.0)?,
        }
        writeln!(
            f,
            "threshold       {:.4} (cosine similarity)",
            self.threshold
        )?;
        writeln!(
            f,
            "TAR @ FAR 1e-3  {:.2}% (threshold {:.4}; {} impostor pairs, so FAR resolution {:.1e})",
            self.tar_at_far_1e3 * 100.0,
            self.tar_threshold,
            self.impostors,
            1.0 / self.impostors.max(1) as f64
        )?;
        writeln!(
            f,
            "mean cosine     same person {:.3}, different people {:.3}",
            self.genuine_mean, self.impostor_mean
        )?;
        writeln!(
            f,
            "time            {} images in {:.1} s",
            self.images, self.seconds
        )?;
        for s in &self.skipped {
            writeln!(f, "skipped         {s}")?;
        }
        for s in &self.failures {
            writeln!(f, "error           {s}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a: &str, b: &str, same: bool) -> Pair {
        Pair {
            a: PathBuf::from(a),
            b: PathBuf::from(b),
            same,
            fold: 0,
            line: 1,
        }
    }

    #[test]
    fn a_pair_without_a_face_is_a_non_match_at_every_threshold() {
        let root = Path::new("/lfw");
        let e = |v: [f32; 2]| ImageOutcome::Embedded(Embedding(v.to_vec()));
        let images: HashMap<PathBuf, ImageOutcome> = [
            ("/lfw/a1", e([1.0, 0.0])),
            ("/lfw/a2", e([0.9, 0.1])),
            ("/lfw/b1", e([0.0, 1.0])),
            ("/lfw/c1", e([0.5, 0.5])),
            ("/lfw/x", ImageOutcome::Failed("no face found".into())),
        ]
        .into_iter()
        .map(|(k, v)| (PathBuf::from(k), v))
        .collect();
        let pairs = [
            pair("a1", "a2", true),
            pair("a1", "x", true),
            pair("a1", "b1", false),
            pair("b1", "c1", false),
            pair("x", "c1", false),
        ];
        let (scored, skipped, failures) = score_pairs(&pairs, root, &images);
        assert!(skipped.is_empty());
        assert_eq!(failures.len(), 2);
        // At every threshold a failed pair is rejected: a false reject when same, a correct
        // reject when different, never an accept.
        for t in [-1.0f32, -0.5, 0.0, 0.4, 0.99, 1.0] {
            for s in scored.iter().filter(|s| s.score == NO_MATCH) {
                assert!(s.score < t);
            }
        }
        let failed_diff = scored.iter().find(|s| !s.same && s.score == NO_MATCH);
        assert!(failed_diff.is_some());
        // TAR at FAR 0 is not pushed to an impossible threshold by the failed impostor pair.
        let (tar, threshold) = metrics::tar_at_far(&scored, 0.0);
        assert!(threshold <= 1.0, "{threshold}");
        assert!((tar - 0.5).abs() < 1e-9, "{tar}");
        // The ROC has no floor: at the strictest threshold FAR is 0.
        let roc = metrics::roc(&scored);
        assert!(
            roc.iter().any(|&(far, tar)| far == 0.0 && tar > 0.0),
            "{roc:?}"
        );
    }
}
