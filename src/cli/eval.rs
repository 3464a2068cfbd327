//! `facegate eval`: LFW verification accuracy and the liveness evaluation (the open-set
//! protocol is in [`super::open_set`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facegate::config::Config;
use facegate::eval::{self, lfw, plot};
use facegate::vision::AlignLimits;
use serde_json::json;

use crate::load_models;

pub fn eval_liveness(
    config: &Config,
    faces: &Path,
    settings: eval::liveness::Settings,
    plot_path: Option<PathBuf>,
    as_json: bool,
) -> Result<ExitCode> {
    use facegate::vision::liveness::{Mode, fuse};
    let mut config = config.clone();
    if !config.liveness.needed() {
        config.liveness.door = Mode::Enforce;
    }
    let models = load_models(&config, None)?;
    let bar = indicatif::ProgressBar::new(0);
    let t0 = std::time::Instant::now();
    let visits = eval::liveness::collect(
        &models,
        &config.vision.params(),
        faces,
        &settings,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    if visits.is_empty() {
        bail!(
            "no visits: is {} the shared face collection?",
            faces.display()
        );
    }
    let report = eval::liveness_report::report(&visits, &fuse::FUSION, config.liveness.threshold);
    if let Some(p) = &plot_path {
        use eval::liveness::{Split, det};
        let test: Vec<&eval::liveness::VisitResult> =
            visits.iter().filter(|v| v.split == Split::Test).collect();
        let curve = |scorer: &eval::liveness::Scorer| {
            let s = |live: bool| -> Vec<f32> {
                test.iter()
                    .filter(|v| v.attack.is_none() == live)
                    .filter_map(|v| v.features.map(|f| scorer.score(&f)))
                    .collect()
            };
            det(&s(true), &s(false))
        };
        let cnn = curve(&report.candidates[0].scorer);
        let shipped = curve(&eval::liveness::Scorer::from_fusion(&fuse::FUSION));
        let greedy = curve(&report.chosen.scorer);
        plot::det_png(
            p,
            "Liveness DET, test part (synthetic attacks, per visit)",
            &plot::LIVENESS_AXES,
            &[
                plot::Curve {
                    label: "network alone".into(),
                    points: &cnn,
                },
                plot::Curve {
                    label: "shipped fusion".into(),
                    points: &shipped,
                },
                plot::Curve {
                    label: report.chosen.name.clone(),
                    points: &greedy,
                },
            ],
        )
        .with_context(|| format!("writing {}", p.display()))?;
    }
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"report": report, "visits": visits}))?
        );
    } else {
        print!("{}", report.text());
        println!(
            "
{} visits of {} frames in {:.0} s ({} threads)",
            visits.len(),
            settings.frames,
            t0.elapsed().as_secs_f64(),
            settings.threads
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
pub fn eval_lfw(
    config: &Config,
    pairs: &Path,
    root: Option<PathBuf>,
    train: Option<PathBuf>,
    plot_path: Option<PathBuf>,
    embedders: Vec<String>,
    threads: usize,
    as_json: bool,
) -> Result<ExitCode> {
    let test = lfw::read_pairs(pairs)?;
    let root = root.unwrap_or_else(|| pairs.parent().unwrap_or(Path::new(".")).to_owned());
    let train = match train.or_else(|| {
        if test.folds == 1 {
            lfw::sibling_train_file(pairs)
        } else {
            None
        }
    }) {
        Some(t) if test.folds == 1 => Some(lfw::read_pairs(&t)?),
        _ => None,
    };
    // Benchmark photos are judged on recognition alone: no pose or size refusals.
    let mut params = config.vision.params();
    params.limits = AlignLimits::NONE;
    let names: Vec<Option<String>> = if embedders.is_empty() {
        vec![None]
    } else {
        embedders.into_iter().map(Some).collect()
    };
    let mut reports = Vec::new();
    for name in &names {
        let models = load_models(config, name.as_deref())?;
        let report = eval::evaluate(
            &models,
            &params,
            &test,
            train.as_ref(),
            &root,
            threads,
            config.vision.max_image_pixels,
        )?;
        if !as_json {
            println!(
                "== {} ({:?}, {}-d)",
                models.embedder.name,
                models.embedder.precision,
                models.dim()
            );
            println!("{report}");
        }
        reports.push((models.embedder.name.clone(), report));
    }
    if as_json {
        let out: Vec<_> = reports
            .iter()
            .map(|(name, r)| {
                json!({
                    "embedder": name,
                    "pairs_file": r.pairs_file,
                    "pairs": r.pairs,
                    "evaluated": r.evaluated,
                    "skipped": r.skipped,
                    "failures": r.failures,
                    "accuracy": r.accuracy,
                    "accuracy_std": r.accuracy_std,
                    "threshold": r.threshold,
                    "tar_at_far_1e-3": r.tar_at_far_1e3,
                    "tar_threshold": r.tar_threshold,
                    "impostor_pairs": r.impostors,
                    "seconds": r.seconds,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if let Some(p) = plot_path {
        let curves: Vec<plot::Curve> = reports
            .iter()
            .map(|(name, r)| plot::Curve {
                label: format!("{name}: {:.2}%", r.accuracy * 100.0),
                points: &r.roc,
            })
            .collect();
        let title = format!(
            "ROC on {}",
            pairs.file_name().map_or_else(
                || pairs.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            )
        );
        plot::roc_png(&p, &title, &curves).with_context(|| format!("writing {}", p.display()))?;
        if !as_json {
            println!("ROC curve written to {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `facegate eval --lfw-pairs pairsDevTest.txt --by-face-size [SCALES]`.
#[allow(clippy::too_many_arguments)]
pub fn eval_by_face_size(
    config: &Config,
    pairs: &Path,
    root: Option<PathBuf>,
    train: Option<PathBuf>,
    scales: &str,
    embedder: Option<&str>,
    threads: usize,
    as_json: bool,
) -> Result<ExitCode> {
    use facegate::eval::face_size::{self, Scale};
    let scales: Vec<Scale> = scales
        .split(',')
        .map(Scale::parse)
        .collect::<Result<_, String>>()
        .map_err(anyhow::Error::msg)
        .context("--by-face-size")?;
    let test = lfw::read_pairs(pairs)?;
    let root = root.unwrap_or_else(|| pairs.parent().unwrap_or(Path::new(".")).to_owned());
    let Some(train) = train.or_else(|| lfw::sibling_train_file(pairs)) else {
        bail!("--by-face-size needs the View 1 training pairs: give --train-pairs FILE");
    };
    let train = lfw::read_pairs(&train)?;
    let mut params = config.vision.params();
    params.limits = AlignLimits::NONE;
    let models = load_models(config, embedder)?;
    let bar = indicatif::ProgressBar::new(0);
    let t0 = std::time::Instant::now();
    let report = face_size::measure(
        &models,
        &params,
        &test,
        &train,
        &root,
        &scales,
        threads,
        config.vision.max_image_pixels,
        &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
        println!(
            "{} images at {} scales in {:.0} s ({} threads)",
            report.images,
            scales.len(),
            t0.elapsed().as_secs_f64(),
            threads
        );
    }
    Ok(ExitCode::SUCCESS)
}
