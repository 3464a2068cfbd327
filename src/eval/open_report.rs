//! `facegate eval --open-set`: embed a folder of people once, split it (fixed seed), calibrate
//! on the calibration part and measure each decision rule on the report part (see
//! [`super::openset`] for the protocol).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::open_cohort;
use super::openset::{self, Part, Person, Point, Search, Setup};
use super::{EvalError, ImageOutcome};
use crate::access::calibration::{Calibration, ProbeKind};
use crate::vision::{Embedding, Models, VisionParams};

/// The protocol's settings (defaults are the README's fixed protocol).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    pub seed: u64,
    pub calibration_share: f64,
    pub rounds: usize,
    pub galleries: Vec<usize>,
    /// Enrollment photos per person in the multi-photo rows.
    pub enroll_photos: usize,
    /// Frames fused per visit in the visit rows.
    pub visit_frames: usize,
    /// FPIR targets read off the DET curves and derived from the calibration.
    pub targets: Vec<f64>,
    /// Today's rule: the model card's 1:1 threshold.
    pub today_threshold: f32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: 13,
            calibration_share: 1.0 / 3.0,
            rounds: 5,
            galleries: vec![100, 1000],
            enroll_photos: 3,
            visit_frames: 3,
            targets: vec![1e-2, 1e-3],
            today_threshold: 0.4122,
        }
    }
}

/// One decision rule measured on the report part.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub label: String,
    pub gallery: usize,
    pub setup: Setup,
    pub margin: f32,
    pub counts: openset::Counts,
    /// Mean templates in a round's gallery.
    pub templates: usize,
    /// Oracle readouts of the DET curve (threshold chosen on the report part itself), per target.
    pub det_at: Vec<Point>,
    /// The threshold derived from the calibration part for each target, and what it gives on
    /// the report part.
    pub calibrated: Vec<Point>,
    /// Mated searches admitted as somebody else at each calibrated point.
    pub wrong_person: Vec<usize>,
    /// The fixed 1:1 threshold's point (today's rule).
    pub fixed: Option<Point>,
    #[serde(skip)]
    pub det: Vec<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OpenReport {
    pub dir: PathBuf,
    pub options: Options,
    pub identities: usize,
    pub images: usize,
    pub calibration_identities: usize,
    pub report_identities: usize,
    pub no_face: usize,
    pub refused: usize,
    pub calibration: Calibration,
    pub rows: Vec<Row>,
    /// The cohort rules chosen on the calibration part: (report gallery size, probe, choice).
    pub cohorts: Vec<(usize, ProbeKind, open_cohort::Choice)>,
    pub seconds: f64,
}

/// Saved embeddings, so that re-running the protocol does not embed again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingCache {
    /// What made them: embedder name and vision settings; a mismatch means embed again.
    pub made_by: String,
    pub images: Vec<CachedImage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedImage {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_face: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Embed `paths`, reusing `cache` (a JSON file) when it was made by `made_by`, and writing it.
pub fn embed_cached(
    models: &Models,
    params: &VisionParams,
    paths: &[PathBuf],
    threads: usize,
    max_pixels: u64,
    cache: Option<&Path>,
) -> Result<HashMap<PathBuf, ImageOutcome>, EvalError> {
    let made_by = format!("{} {:?}", models.embedder.name, params);
    if let Some(c) = cache
        && let Ok(text) = std::fs::read_to_string(c)
        && let Ok(saved) = serde_json::from_str::<EmbeddingCache>(&text)
        && saved.made_by == made_by
    {
        let map: HashMap<PathBuf, ImageOutcome> = saved
            .images
            .into_iter()
            .map(|i| {
                let o = match (i.embedding, i.no_face, i.refused) {
                    (Some(e), _, _) => ImageOutcome::Embedded(Embedding(e)),
                    (_, _, Some(r)) => ImageOutcome::Refused(r),
                    (_, r, _) => ImageOutcome::Failed(r.unwrap_or_default()),
                };
                (i.path, o)
            })
            .collect();
        if paths.iter().all(|p| map.contains_key(p)) {
            tracing::info!(file = %c.display(), "embeddings reused");
            return Ok(map);
        }
    }
    let map = super::embed_images(models, params, paths, threads, max_pixels)?;
    if let Some(c) = cache {
        let mut images: Vec<CachedImage> = map
            .iter()
            .map(|(p, o)| {
                let mut i = CachedImage {
                    path: p.clone(),
                    embedding: None,
                    no_face: None,
                    refused: None,
                };
                match o {
                    ImageOutcome::Embedded(e) => i.embedding = Some(e.0.clone()),
                    ImageOutcome::Failed(r) => i.no_face = Some(r.clone()),
                    ImageOutcome::Refused(r) => i.refused = Some(r.clone()),
                    ImageOutcome::Missing => i.no_face = Some("missing".into()),
                }
                i
            })
            .collect();
        images.sort_by(|a, b| a.path.cmp(&b.path));
        let saved = EmbeddingCache { made_by, images };
        let text = serde_json::to_string(&saved).unwrap_or_default();
        if let Err(e) = std::fs::write(c, text) {
            tracing::warn!(file = %c.display(), error = %e, "embeddings not saved");
        }
    }
    Ok(map)
}

/// Measure every rule of the table on the report part.
pub fn measure(
    dir: &Path,
    ids: &[openset::Identity],
    images: &HashMap<PathBuf, ImageOutcome>,
    opts: &Options,
    started: std::time::Instant,
) -> Result<OpenReport, String> {
    let people = openset::persons(ids, images);
    let parts = openset::split(people.len(), opts.seed, opts.calibration_share);
    let cal: Vec<&Person> = people
        .iter()
        .zip(&parts)
        .filter(|(_, p)| **p == Part::Calibration)
        .map(|(x, _)| x)
        .collect();
    let rep: Vec<&Person> = people
        .iter()
        .zip(&parts)
        .filter(|(_, p)| **p == Part::Report)
        .map(|(x, _)| x)
        .collect();
    let protocol = format!(
        "open-set, {} (seed {}, calibration part {:.0}% of {} identities: {} identities, {} photos); \
         impostor comparisons of a probe with single-photo templates of other people",
        dir.file_name()
            .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into()),
        opts.seed,
        opts.calibration_share * 100.0,
        people.len(),
        cal.len(),
        cal.iter().map(|p| p.photos.len()).sum::<usize>(),
    );
    let calibration = openset::calibrate(&cal, protocol, opts.visit_frames)
        .ok_or("the calibration part is too small (fewer than 1,000 impostor comparisons)")?;

    let one = Setup {
        gallery: 0,
        enroll_photos: 1,
        fuse_templates: false,
        visit_frames: 1,
    };
    let multi = Setup {
        enroll_photos: opts.enroll_photos,
        ..one
    };
    let fused = Setup {
        fuse_templates: true,
        ..multi
    };
    let visit = Setup {
        visit_frames: opts.visit_frames,
        ..multi
    };
    let strictest = opts.targets.iter().copied().fold(1.0, f64::min);
    let mut rows = Vec::new();
    let mut cohorts = Vec::new();
    for &g in &opts.galleries {
        // The margin and the cohort rule are chosen on the calibration part (its own open-set
        // rounds, with the largest gallery it can hold up to g).
        let cal_visits = cal_rounds(&cal, &visit, g, opts);
        let margin = cal_visits
            .as_ref()
            .map_or(0.0, |(_, s)| openset::best_margin(s, strictest));
        let cohort_visit = cal_visits.map(|(cg, s)| {
            let c = open_cohort::choose(&s, cg, strictest, &opts.targets);
            (c, ProbeKind::Visit)
        });
        let cohort_image = cal_rounds(&cal, &one, g, opts).map(|(cg, s)| {
            let c = open_cohort::choose(&s, cg, strictest, &opts.targets);
            (c, ProbeKind::Image)
        });
        let specs: [(&str, Setup, f32, Threshold); 8] = [
            ("today's rule (1:1 threshold)", one, 0.0, Threshold::Fixed),
            ("calibrated threshold", one, 0.0, Threshold::Derived),
            (
                "+ multi-photo enrollment (templates apart)",
                multi,
                0.0,
                Threshold::Derived,
            ),
            (
                "+ multi-photo enrollment (fused template)",
                fused,
                0.0,
                Threshold::Derived,
            ),
            ("+ multi-frame visit fusion", visit, 0.0, Threshold::Derived),
            ("+ margin rule", visit, margin, Threshold::Derived),
            (
                "one photo, cohort normalisation",
                one,
                0.0,
                Threshold::Cohort(cohort_image.as_ref().map(|c| c.0.clone())),
            ),
            (
                "+ multi-frame visit fusion, cohort normalisation",
                visit,
                0.0,
                Threshold::Cohort(cohort_visit.as_ref().map(|c| c.0.clone())),
            ),
        ];
        for (label, setup, margin, how) in specs {
            if matches!(how, Threshold::Cohort(None)) {
                continue;
            }
            let setup = Setup {
                gallery: g,
                ..setup
            };
            let (mut searches, stats) = openset::run(&rep, &setup, opts.seed, opts.rounds)?;
            if let Threshold::Cohort(Some(c)) = &how {
                searches = open_cohort::normalise(&searches, &c.rule);
            }
            let templates = stats.templates / opts.rounds.max(1);
            let kind = openset::probe_kind(&setup);
            rows.push(row(
                label,
                &setup,
                margin,
                &searches,
                templates,
                &calibration,
                kind,
                opts,
                &how,
            ));
        }
        cohorts.extend(
            cohort_image
                .into_iter()
                .chain(cohort_visit)
                .map(|(c, k)| (g, k, c)),
        );
    }
    let (mut no_face, mut refused) = (0, 0);
    for o in images.values() {
        match o {
            ImageOutcome::Failed(_) => no_face += 1,
            ImageOutcome::Refused(_) => refused += 1,
            _ => {}
        }
    }
    Ok(OpenReport {
        dir: dir.to_owned(),
        options: opts.clone(),
        identities: people.len(),
        images: people.iter().map(|p| p.photos.len()).sum(),
        calibration_identities: cal.len(),
        report_identities: rep.len(),
        no_face,
        refused,
        calibration,
        rows,
        cohorts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Where a row's calibrated threshold comes from.
enum Threshold {
    /// Today's rule: the fixed 1:1 threshold, no calibrated column.
    Fixed,
    /// Derived from the calibration tail and the gallery's template count.
    Derived,
    /// Cohort-normalised scores, the threshold read off the calibration part's rounds.
    Cohort(Option<open_cohort::Choice>),
}

/// The calibration part's own open-set rounds with `setup` at the largest gallery it holds up
/// to `g` (halving from `g`), and that gallery size.
fn cal_rounds(
    cal: &[&Person],
    setup: &Setup,
    g: usize,
    opts: &Options,
) -> Option<(usize, Vec<Search>)> {
    let mut cal_gallery = g;
    while cal_gallery >= 50 {
        let s = Setup {
            gallery: cal_gallery,
            ..*setup
        };
        if let Ok((searches, _)) = openset::run(cal, &s, opts.seed ^ 0xCA1, opts.rounds) {
            return Some((cal_gallery, searches));
        }
        cal_gallery /= 2;
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn row(
    label: &str,
    setup: &Setup,
    margin: f32,
    searches: &[Search],
    templates: usize,
    calibration: &Calibration,
    kind: ProbeKind,
    opts: &Options,
    how: &Threshold,
) -> Row {
    let fixed = matches!(how, Threshold::Fixed);
    let det_at = opts
        .targets
        .iter()
        .map(|&t| openset::at_fpir(searches, t, margin))
        .collect();
    let calibrated: Vec<Point> = if fixed {
        Vec::new()
    } else {
        opts.targets
            .iter()
            .map(|&t| {
                let th = match how {
                    Threshold::Cohort(Some(c)) => c
                        .thresholds
                        .iter()
                        .find(|(x, _)| *x == t)
                        .map_or(f32::INFINITY, |x| x.1),
                    _ => calibration.threshold(kind, t, templates),
                };
                openset::point(searches, th, margin)
            })
            .collect()
    };
    let wrong_person = calibrated
        .iter()
        .map(|p| openset::wrong_person(searches, p.threshold, margin))
        .collect();
    Row {
        label: label.to_owned(),
        gallery: setup.gallery,
        setup: *setup,
        margin,
        counts: openset::counts(searches),
        templates,
        det_at,
        calibrated,
        wrong_person,
        fixed: fixed.then(|| openset::point(searches, opts.today_threshold, 0.0)),
        det: openset::det(searches, margin),
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

impl fmt::Display for OpenReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(f, "data            {}", self.dir.display())?;
        writeln!(
            f,
            "split           seed {}, {} identities ({} photos): calibration {}, report {}",
            o.seed,
            self.identities,
            self.images,
            self.calibration_identities,
            self.report_identities
        )?;
        writeln!(
            f,
            "photos          {} no face, {} refused by the quality limits (counted as at a door)",
            self.no_face, self.refused
        )?;
        writeln!(
            f,
            "protocol        {} rounds; enrollment up to {} photos; visits of up to {} frames",
            o.rounds, o.enroll_photos, o.visit_frames
        )?;
        let t = &self.calibration.image;
        writeln!(
            f,
            "calibration     {} impostor comparisons (images){}",
            t.comparisons,
            self.calibration
                .visit
                .as_ref()
                .map(|v| format!(", {} (visits)", v.comparisons))
                .unwrap_or_default()
        )?;
        for r in &self.rows {
            writeln!(f)?;
            writeln!(f, "== gallery {} · {}", r.gallery, r.label)?;
            writeln!(
                f,
                "   searches     {} mated ({} no face, {} refused), {} non-mated ({} no face, {} refused); {} templates, margin {:.2}",
                r.counts.mated,
                r.counts.mated_no_face,
                r.counts.mated_refused,
                r.counts.non_mated,
                r.counts.non_mated_no_face,
                r.counts.non_mated_refused,
                r.templates,
                r.margin
            )?;
            if let Some(p) = &r.fixed {
                writeln!(
                    f,
                    "   at {:.4}     FPIR {} FNIR {}",
                    p.threshold,
                    pct(p.fpir),
                    pct(p.fnir)
                )?;
            }
            for (i, target) in o.targets.iter().enumerate() {
                let d = &r.det_at[i];
                write!(
                    f,
                    "   FPIR {target:.0e}   DET: FNIR {} (threshold {:.4}, FPIR {:.1e})",
                    pct(d.fnir),
                    d.threshold,
                    d.fpir
                )?;
                if let Some(c) = r.calibrated.get(i) {
                    write!(
                        f,
                        "; calibrated threshold {:.4}: FPIR {:.1e}, FNIR {} ({} wrong person)",
                        c.threshold,
                        c.fpir,
                        pct(c.fnir),
                        r.wrong_person[i]
                    )?;
                }
                writeln!(f)?;
            }
        }
        for (g, kind, c) in &self.cohorts {
            writeln!(f)?;
            writeln!(
                f,
                "== cohort rule for gallery {g} ({kind:?}), chosen on the calibration part (gallery {}, FPIR {:.0e}): raw FNIR {}",
                c.gallery,
                c.target,
                pct(c.raw_fnir)
            )?;
            for t in &c.tried {
                writeln!(
                    f,
                    "   k {:>2} weight {:.2}: FNIR {}",
                    t.rule.k,
                    t.rule.weight,
                    pct(t.fnir)
                )?;
            }
            let th: Vec<String> = c
                .thresholds
                .iter()
                .map(|(t, s)| format!("{s:.4} at FPIR {t:.0e}"))
                .collect();
            writeln!(
                f,
                "   chosen k {} weight {:.2}; thresholds {}",
                c.rule.k,
                c.rule.weight,
                th.join(", ")
            )?;
        }
        writeln!(f)?;
        writeln!(f, "time            {:.1} s", self.seconds)
    }
}

/// The `[calibration]` table for the embedder's model card.
pub fn calibration_toml(c: &Calibration) -> String {
    use std::fmt::Write;
    let mut out = String::from("[calibration]\n");
    let _ = writeln!(out, "protocol = {:?}", c.protocol);
    let tail = |out: &mut String, name: &str, t: &crate::access::calibration::Tail| {
        let _ = writeln!(out, "\n[calibration.{name}]");
        let _ = writeln!(
            out,
            "# False-match rates of impostor comparisons and the cosine at each ({} comparisons \
             measured; below 1/{} extrapolated along an exponential tail).",
            t.comparisons, t.comparisons
        );
        let fmr: Vec<String> = t.fmr.iter().map(|f| format!("{f:.2e}")).collect();
        let score: Vec<String> = t.score.iter().map(|s| format!("{s:.4}")).collect();
        let _ = writeln!(out, "fmr = [{}]", fmr.join(", "));
        let _ = writeln!(out, "score = [{}]", score.join(", "));
        let _ = writeln!(out, "comparisons = {}", t.comparisons);
        if let Some(f) = t.frames {
            let _ = writeln!(out, "frames = {f}");
        }
    };
    tail(&mut out, "image", &c.image);
    if let Some(v) = &c.visit {
        tail(&mut out, "visit", v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::calibration::Tail;

    #[test]
    fn the_calibration_table_reads_back_as_a_model_card_section() {
        let t = Tail {
            fmr: vec![1e-1, 1e-3, 1e-5],
            score: vec![0.2, 0.45, 0.6],
            comparisons: 1234,
            frames: None,
        };
        let c = Calibration {
            protocol: "p \"q\"".into(),
            image: t.clone(),
            visit: Some(Tail {
                frames: Some(3),
                ..t
            }),
        };
        #[derive(Deserialize)]
        struct Card {
            calibration: Calibration,
        }
        let back: Card = toml::from_str(&calibration_toml(&c)).unwrap();
        assert_eq!(back.calibration, c);
    }
}
