//! What the closer look and the mirror image are worth, by face size (issue #15).
//!
//! The LFW View 1 protocol (threshold from DevTrain, accuracy on DevTest) run on each photo as
//! the door's camera would see it from nearer or farther: the 250×250 photo scaled by S and
//! pasted in the middle of a 640×480 mid-grey frame, plus the photo alone ("native", what
//! `facegate eval --lfw-pairs` measures). Each image is looked at once per scale: the
//! whole-frame detection, then the closer look, and both faces embedded without and with the
//! mirror image. So the four settings (closer look on/off × mirror on/off) are scored on the
//! same detections, and so are the rules that use the closer look or the mirror only for some
//! faces: "closer look when it magnifies more than Z" (`vision.refine_min_zoom`) and "mirror
//! when the eyes are closer than E pixels".
//!
//! A rule is chosen on DevTrain only: the cheapest one whose DevTrain accuracy (threshold
//! chosen on DevTrain) is, at every scale, at most 0.1 point under the default's. Its DevTest
//! accuracy is then reported next to the default's: nothing of DevTest chooses anything.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{Rgb, RgbImage, imageops};

use super::metrics::{self, Scored};
use super::{EvalError, ImageOutcome, PairsFile, score_pairs};
use crate::vision::detect::closer_look_zoom;
use crate::vision::{Detection, Embedding, Models, Pipeline, VisionError, VisionParams, frame};

/// The door camera's frame the photos are pasted into.
pub const FRAME: (u32, u32) = (640, 480);

/// How a photo is shown to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// The photo itself (LFW's 250×250).
    Native,
    /// Scaled by this factor and pasted in the middle of a 640×480 grey frame.
    Framed(f32),
}

impl Scale {
    /// `native` or a factor (0.1..=4).
    pub fn parse(text: &str) -> Result<Scale, String> {
        let t = text.trim();
        if t == "native" {
            return Ok(Scale::Native);
        }
        match t.parse::<f32>() {
            Ok(s) if (0.1..=4.0).contains(&s) => Ok(Scale::Framed(s)),
            _ => Err(format!(
                "scale {t:?} is neither \"native\" nor a factor between 0.1 and 4"
            )),
        }
    }

    fn label(&self) -> String {
        match self {
            Scale::Native => "native".into(),
            Scale::Framed(s) => format!("{s}x in 640x480"),
        }
    }
}

/// One face as embedded: its size and both embeddings (without, with the mirror).
#[derive(Debug, Clone)]
struct Embedded {
    eye_px: f32,
    plain: Embedding,
    mirrored: Embedding,
}

/// One image at one scale.
#[derive(Debug, Clone, Default)]
struct Looked {
    /// The face of the whole-frame view (no closer look).
    coarse: Option<Embedded>,
    /// The same face after the closer look (`None` also when the closer look lost it).
    refined: Option<Embedded>,
    /// The closer look's magnification of the coarse face.
    zoom: f32,
    face_px: f32,
    failure: Option<String>,
}

/// When the closer look and the mirror are used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Closer look when it magnifies more than this (1.0: always; infinite: never).
    pub min_zoom: f32,
    /// Mirror when the eyes are closer than this many pixels (infinite: always; 0: never).
    pub mirror_below_eye_px: f32,
}

impl Rule {
    pub const DEFAULT: Rule = Rule {
        min_zoom: 1.0,
        mirror_below_eye_px: f32::INFINITY,
    };

    fn label(&self) -> String {
        let closer = match self.min_zoom {
            z if z.is_infinite() => "no closer look".to_string(),
            z if z <= 1.0 => "closer look".to_string(),
            z => format!("closer look if zoom > {z}"),
        };
        let mirror = match self.mirror_below_eye_px {
            e if e.is_infinite() => "mirror".to_string(),
            e if e <= 0.0 => "no mirror".to_string(),
            e => format!("mirror if eyes < {e} px"),
        };
        format!("{closer}, {mirror}")
    }

    /// The embedding this rule gives one looked image, and the inferences it costs (detector,
    /// embedder).
    fn apply(&self, l: &Looked) -> (Option<Embedding>, (u32, u32)) {
        let closer = l.zoom > self.min_zoom.max(1.0);
        let face = if closer { &l.refined } else { &l.coarse };
        let detector_runs = 1 + u32::from(closer);
        match face {
            None => (None, (detector_runs, 0)),
            Some(f) if f.eye_px < self.mirror_below_eye_px => {
                (Some(f.mirrored.clone()), (detector_runs, 2))
            }
            Some(f) => (Some(f.plain.clone()), (detector_runs, 1)),
        }
    }
}

/// The rules tried: the four fixed settings, then every zoom × eye-distance combination.
pub fn rules() -> Vec<Rule> {
    let zooms = [1.0, 1.25, 1.5, 2.0, 3.0, f32::INFINITY];
    let eyes = [f32::INFINITY, 100.0, 80.0, 60.0, 40.0, 0.0];
    let mut out = Vec::new();
    for z in zooms {
        for e in eyes {
            out.push(Rule {
                min_zoom: z,
                mirror_below_eye_px: e,
            });
        }
    }
    out
}

/// One rule's result at one scale.
#[derive(Debug, Clone)]
pub struct Cell {
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub threshold: f32,
    /// Mean detector and embedder runs per image.
    pub detector_runs: f64,
    pub embedder_runs: f64,
}

/// The whole measurement.
#[derive(Debug, Clone)]
pub struct Report {
    pub scales: Vec<Scale>,
    /// Per scale: median face width and eye distance (pixels, whole-frame detection), median
    /// closer-look zoom, images without a face.
    pub sizes: Vec<(f32, f32, f32, usize)>,
    pub rules: Vec<Rule>,
    /// `cells[rule][scale]`.
    pub cells: Vec<Vec<Cell>>,
    /// The rule chosen on DevTrain.
    pub chosen: usize,
    pub images: usize,
}

/// The frame the pipeline sees for `photo` at `scale`.
pub fn framed(photo: &RgbImage, scale: Scale) -> RgbImage {
    match scale {
        Scale::Native => photo.clone(),
        Scale::Framed(s) => {
            let w = ((photo.width() as f32 * s).round() as u32).max(1);
            let h = ((photo.height() as f32 * s).round() as u32).max(1);
            let small = imageops::resize(photo, w, h, imageops::FilterType::Triangle);
            let mut out = RgbImage::from_pixel(FRAME.0, FRAME.1, Rgb([128, 128, 128]));
            let x = (i64::from(FRAME.0) - i64::from(w)) / 2;
            let y = (i64::from(FRAME.1) - i64::from(h)) / 2;
            imageops::overlay(&mut out, &small, x, y);
            out
        }
    }
}

fn nearest_centre<'a>(dets: &'a [Detection], frame: &RgbImage) -> Option<&'a Detection> {
    let (cx, cy) = (frame.width() as f32 / 2.0, frame.height() as f32 / 2.0);
    dets.iter().min_by(|a, b| {
        let d = |d: &Detection| {
            let c = d.bbox.centre();
            (c.x - cx).powi(2) + (c.y - cy).powi(2)
        };
        d(a).total_cmp(&d(b))
    })
}

fn embed_face(
    pipeline: &mut Pipeline,
    frame: &RgbImage,
    det: &Detection,
) -> Result<Option<Embedded>, VisionError> {
    let aligned = pipeline.align_face(frame, det);
    if aligned.usable.is_err() {
        return Ok(None);
    }
    let (plain, mirrored) = pipeline.embed_plain_and_mirrored(&aligned.crop)?;
    Ok(Some(Embedded {
        eye_px: aligned.quality.eye_distance_px,
        plain,
        mirrored,
    }))
}

fn look(pipeline: &mut Pipeline, frame: &RgbImage) -> Result<Looked, VisionError> {
    let found = pipeline.detect_coarse(frame)?;
    // Without the closer look: only the size limit and the order, as `detect` does.
    pipeline.params.detect.refine = false;
    let coarse_faces = pipeline.refine(frame, found.clone())?;
    pipeline.params.detect.refine = true;
    pipeline.params.detect.refine_min_zoom = 1.0;
    let refined_faces = pipeline.refine(frame, found)?;
    let mut out = Looked::default();
    let Some(coarse) = nearest_centre(&coarse_faces, frame) else {
        out.failure = Some("no face found".into());
        return Ok(out);
    };
    out.zoom = closer_look_zoom(frame.width(), frame.height(), &coarse.bbox);
    out.face_px = coarse.bbox.w;
    out.coarse = embed_face(pipeline, frame, coarse)?;
    if let Some(refined) = nearest_centre(&refined_faces, frame) {
        out.refined = embed_face(pipeline, frame, refined)?;
    }
    Ok(out)
}

/// Look at every image of `train` and `test` at every scale, with `threads` pipelines.
#[allow(clippy::too_many_arguments)]
pub fn measure(
    models: &Models,
    params: &VisionParams,
    test: &PairsFile,
    train: &PairsFile,
    root: &Path,
    scales: &[Scale],
    threads: usize,
    max_pixels: u64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report, EvalError> {
    let mut paths: Vec<PathBuf> = test
        .pairs
        .iter()
        .chain(train.pairs.iter())
        .flat_map(|p| [root.join(&p.a), root.join(&p.b)])
        .collect();
    paths.sort();
    paths.dedup();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let looked: Mutex<HashMap<PathBuf, Vec<Looked>>> = Mutex::new(HashMap::new());
    let first_error: Mutex<Option<VisionError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let run = || -> Result<(), VisionError> {
                    let mut pipeline = Pipeline::new(models, params.clone())?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else {
                            return Ok(());
                        };
                        let per_scale = match frame::read_image(path, max_pixels) {
                            Err(e) => scales
                                .iter()
                                .map(|_| Looked {
                                    failure: Some(e.to_string()),
                                    ..Looked::default()
                                })
                                .collect(),
                            Ok(photo) => scales
                                .iter()
                                .map(|&s| look(&mut pipeline, &framed(&photo, s)))
                                .collect::<Result<Vec<_>, _>>()?,
                        };
                        if let Ok(mut m) = looked.lock() {
                            m.insert(path.clone(), per_scale);
                        }
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, paths.len());
                    }
                };
                if let Err(e) = run()
                    && let Ok(mut slot) = first_error.lock()
                {
                    slot.get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e.into());
    }
    let looked = looked.into_inner().unwrap_or_default();
    Ok(report(&looked, test, train, root, scales))
}

fn median(mut xs: Vec<f32>) -> f32 {
    if xs.is_empty() {
        return f32::NAN;
    }
    xs.sort_by(f32::total_cmp);
    xs[xs.len() / 2]
}

fn report(
    looked: &HashMap<PathBuf, Vec<Looked>>,
    test: &PairsFile,
    train: &PairsFile,
    root: &Path,
    scales: &[Scale],
) -> Report {
    let sizes = (0..scales.len())
        .map(|k| {
            let at = || looked.values().map(move |v| &v[k]);
            let with_face = || at().filter(|l| l.coarse.is_some());
            (
                median(with_face().map(|l| l.face_px).collect()),
                median(
                    with_face()
                        .filter_map(|l| l.coarse.as_ref().map(|c| c.eye_px))
                        .collect(),
                ),
                median(with_face().map(|l| l.zoom).collect()),
                at().filter(|l| l.coarse.is_none()).count(),
            )
        })
        .collect();
    let rules = rules();
    let cells: Vec<Vec<Cell>> = rules
        .iter()
        .map(|rule| {
            (0..scales.len())
                .map(|k| {
                    let mut outcomes = HashMap::with_capacity(looked.len());
                    let (mut det, mut emb) = (0u64, 0u64);
                    for (path, per_scale) in looked {
                        let l = &per_scale[k];
                        let (e, (d, m)) = rule.apply(l);
                        det += u64::from(d);
                        emb += u64::from(m);
                        let outcome = match (e, &l.failure) {
                            (Some(e), _) => ImageOutcome::Embedded(e),
                            (None, Some(why)) => ImageOutcome::Failed(why.clone()),
                            (None, None) => ImageOutcome::Failed("no usable face".into()),
                        };
                        outcomes.insert(path.clone(), outcome);
                    }
                    let score =
                        |f: &PairsFile| -> Vec<Scored> { score_pairs(&f.pairs, root, &outcomes).0 };
                    let (tr, te) = (score(train), score(test));
                    let threshold = metrics::best_threshold(&tr);
                    let n = looked.len().max(1) as f64;
                    Cell {
                        train_accuracy: metrics::accuracy(&tr, threshold),
                        test_accuracy: metrics::accuracy(&te, threshold),
                        threshold,
                        detector_runs: det as f64 / n,
                        embedder_runs: emb as f64 / n,
                    }
                })
                .collect()
        })
        .collect();
    let chosen = choose(&rules, &cells);
    Report {
        scales: scales.to_vec(),
        sizes,
        rules,
        cells,
        chosen,
        images: looked.len(),
    }
}

/// Relative cost of a rule: detector and embedder runs weighted by their single-thread
/// medians in the README's speed table (5.07 ms and 14.2 ms).
fn cost(cells: &[Cell]) -> f64 {
    cells
        .iter()
        .map(|c| 5.07 * c.detector_runs + 14.2 * c.embedder_runs)
        .sum::<f64>()
        / cells.len().max(1) as f64
}

/// The cheapest rule whose DevTrain accuracy is within 0.1 point of the default's at every
/// scale (the default itself when none is cheaper).
fn choose(rules: &[Rule], cells: &[Vec<Cell>]) -> usize {
    let default = rules.iter().position(|r| *r == Rule::DEFAULT).unwrap_or(0);
    let ok = |i: usize| {
        cells[i]
            .iter()
            .zip(&cells[default])
            .all(|(c, d)| c.train_accuracy >= d.train_accuracy - 0.001 - 1e-12)
    };
    (0..rules.len())
        .filter(|&i| ok(i))
        .min_by(|&a, &b| cost(&cells[a]).total_cmp(&cost(&cells[b])))
        .unwrap_or(default)
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let pct = |x: f64| format!("{:.2}", 100.0 * x);
        let _ = writeln!(
            s,
            "LFW View 1 by face size: threshold from DevTrain, accuracy on DevTest (%), {} images",
            self.images
        );
        let _ = writeln!(
            s,
            "\n{:<18} {:>9} {:>8} {:>7} {:>8}",
            "scale", "face px", "eyes px", "zoom", "no face"
        );
        for (sc, (f, e, z, n)) in self.scales.iter().zip(&self.sizes) {
            let _ = writeln!(s, "{:<18} {f:>9.0} {e:>8.1} {z:>7.2} {n:>8}", sc.label());
        }
        let header: Vec<String> = self.scales.iter().map(Scale::label).collect();
        let _ = writeln!(
            s,
            "\nDevTest accuracy (DevTrain accuracy), cost = mean ms of inference per image at the README's medians"
        );
        let _ = writeln!(s, "{:<46} {:>6}  {}", "rule", "cost", header.join(" | "));
        let fixed = [
            Rule::DEFAULT,
            Rule {
                min_zoom: 1.0,
                mirror_below_eye_px: 0.0,
            },
            Rule {
                min_zoom: f32::INFINITY,
                mirror_below_eye_px: f32::INFINITY,
            },
            Rule {
                min_zoom: f32::INFINITY,
                mirror_below_eye_px: 0.0,
            },
        ];
        let mut shown: Vec<usize> = fixed
            .iter()
            .filter_map(|f| self.rules.iter().position(|r| r == f))
            .collect();
        // Then every other rule, cheapest first.
        let mut rest: Vec<usize> = (0..self.rules.len())
            .filter(|i| !shown.contains(i))
            .collect();
        rest.sort_by(|&a, &b| cost(&self.cells[a]).total_cmp(&cost(&self.cells[b])));
        shown.extend(rest);
        for i in shown {
            let mark = if i == self.chosen { " (chosen)" } else { "" };
            let cols: Vec<String> = self.cells[i]
                .iter()
                .map(|c| format!("{} ({})", pct(c.test_accuracy), pct(c.train_accuracy)))
                .collect();
            let _ = writeln!(
                s,
                "{:<46} {:>6.1}  {}",
                format!("{}{mark}", self.rules[i].label()),
                cost(&self.cells[i]),
                cols.join(" | ")
            );
        }
        let _ = writeln!(
            s,
            "\nChosen on DevTrain: the cheapest of {} rules within 0.1 point of the default's DevTrain accuracy at every scale.",
            self.rules.len()
        );
        s
    }

    /// Every rule's cells, for `--json`.
    pub fn json(&self) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = self
            .rules
            .iter()
            .zip(&self.cells)
            .map(|(r, cells)| {
                serde_json::json!({
                    "rule": r.label(),
                    "cost_ms": cost(cells),
                    "scales": cells.iter().zip(&self.scales).map(|(c, s)| serde_json::json!({
                        "scale": s.label(),
                        "test_accuracy": c.test_accuracy,
                        "train_accuracy": c.train_accuracy,
                        "threshold": c.threshold,
                        "detector_runs": c.detector_runs,
                        "embedder_runs": c.embedder_runs,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({
            "images": self.images,
            "chosen": self.rules[self.chosen].label(),
            "sizes": self.scales.iter().zip(&self.sizes).map(|(s, (f, e, z, n))| serde_json::json!({
                "scale": s.label(), "face_px": f, "eye_px": e, "zoom": z, "no_face": n,
            })).collect::<Vec<_>>(),
            "rules": rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse_and_frames_keep_the_photo_in_the_middle() {
        assert_eq!(Scale::parse("native"), Ok(Scale::Native));
        assert_eq!(Scale::parse(" 0.5 "), Ok(Scale::Framed(0.5)));
        assert!(Scale::parse("0").is_err());
        assert!(Scale::parse("big").is_err());
        let photo = RgbImage::from_pixel(250, 250, Rgb([255, 0, 0]));
        let f = framed(&photo, Scale::Framed(0.5));
        assert_eq!(f.dimensions(), FRAME);
        assert_eq!(f.get_pixel(320, 240).0, [255, 0, 0]);
        assert_eq!(f.get_pixel(10, 10).0, [128, 128, 128]);
        // Larger than the frame: cropped around the middle.
        let f = framed(&photo, Scale::Framed(3.0));
        assert_eq!(f.get_pixel(0, 0).0, [255, 0, 0]);
    }

    fn emb(v: &[f32]) -> Embedding {
        Embedding::normalised(v.to_vec()).expect("non-zero")
    }

    #[test]
    fn a_rule_picks_the_closer_look_and_mirror_by_zoom_and_eye_distance() {
        let face = |x: f32, eye_px: f32| Embedded {
            eye_px,
            plain: emb(&[x, 1.0]),
            mirrored: emb(&[x, 2.0]),
        };
        let l = Looked {
            coarse: Some(face(1.0, 30.0)),
            refined: Some(face(3.0, 31.0)),
            zoom: 1.8,
            face_px: 60.0,
            failure: None,
        };
        let r = |min_zoom, mirror_below_eye_px| Rule {
            min_zoom,
            mirror_below_eye_px,
        };
        let (e, cost) = Rule::DEFAULT.apply(&l);
        assert_eq!(cost, (2, 2));
        assert!(e.expect("face").cosine(&emb(&[3.0, 2.0])) > 0.9999);
        let (e, cost) = r(2.0, 25.0).apply(&l);
        assert_eq!(cost, (1, 1));
        assert!(e.expect("face").cosine(&emb(&[1.0, 1.0])) > 0.9999);
        let (_, cost) = r(1.5, 30.5).apply(&l);
        assert_eq!(cost, (2, 1), "refined eyes 31 px are not under 30.5");
    }
}
