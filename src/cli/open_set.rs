//! `facegate eval --open-set DIR`: the open-set protocol (see `facegate::eval::openset`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use clap::Args;
use facegate::config::Config;
use facegate::eval::open_report::{self, Options};
use facegate::eval::{openset, plot};

#[derive(Args, Debug)]
pub struct OpenSetArgs {
    /// Open-set identification instead of LFW pairs: a folder of <person>/<photos>.
    #[arg(long, value_name = "DIR")]
    pub open_set: Option<PathBuf>,
    /// Seed of the fixed identity split and of the rounds.
    #[arg(long, default_value_t = 13)]
    pub seed: u64,
    /// Gallery sizes (persons enrolled); repeat for several.
    #[arg(long = "gallery", value_name = "N")]
    pub galleries: Vec<usize>,
    /// Rounds (different galleries drawn from the report part) pooled per figure.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Enrollment photos per person in the multi-photo rows.
    #[arg(long, default_value_t = 3)]
    pub enroll_photos: usize,
    /// Frames (photos) fused per visit in the visit rows.
    #[arg(long, default_value_t = 3)]
    pub visit_frames: usize,
    /// Label corrections: `same A B` (two names of one person), `drop PERSON/FILE`
    /// (docs/lfw-dev-errata.txt for lfw-dev).
    #[arg(long, value_name = "FILE")]
    pub errata: Option<PathBuf>,
    /// Keep the embeddings in this JSON file and reuse them on the next run.
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,
    /// Write the measured calibration as the model card's [calibration] table (TOML).
    #[arg(long, value_name = "FILE")]
    pub calibration_out: Option<PathBuf>,
    /// Write one DET plot per gallery size: PREFIX-<size>.png.
    #[arg(long, value_name = "PREFIX")]
    pub det_plot: Option<PathBuf>,
}

pub fn run(
    config: &Config,
    dir: &Path,
    args: &OpenSetArgs,
    embedder: Option<&str>,
    threads: usize,
    as_json: bool,
) -> Result<ExitCode> {
    let started = Instant::now();
    let models = crate::load_models(config, embedder)?;
    // As at a door: the configured quality limits refuse turned or tiny faces.
    let params = config.vision.params();
    let mut ids = openset::read_identities(dir)?;
    if let Some(e) = &args.errata {
        let text =
            std::fs::read_to_string(e).with_context(|| format!("reading {}", e.display()))?;
        let n = openset::apply_errata(&mut ids, &text, e)?;
        tracing::info!(corrections = n, file = %e.display(), "errata applied");
    }
    let paths: Vec<PathBuf> = ids.iter().flat_map(|i| i.photos.iter().cloned()).collect();
    tracing::info!(
        identities = ids.len(),
        images = paths.len(),
        "open-set protocol"
    );
    let images = open_report::embed_cached(
        &models,
        &params,
        &paths,
        threads,
        config.vision.max_image_pixels,
        args.embeddings.as_deref(),
    )?;
    let mut opts = Options {
        seed: args.seed,
        rounds: args.rounds.max(1),
        enroll_photos: args.enroll_photos.max(1),
        visit_frames: args.visit_frames.max(1),
        today_threshold: crate::threshold(config, &models)?,
        ..Options::default()
    };
    if !args.galleries.is_empty() {
        opts.galleries = args.galleries.clone();
    }
    let report =
        open_report::measure(dir, &ids, &images, &opts, started).map_err(|e| anyhow!(e))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("== {} ({}-d)", models.embedder.name, models.dim());
        println!("{report}");
    }
    if let Some(out) = &args.calibration_out {
        std::fs::write(out, open_report::calibration_toml(&report.calibration))
            .with_context(|| format!("writing {}", out.display()))?;
        if !as_json {
            println!("calibration written to {}", out.display());
        }
    }
    if let Some(prefix) = &args.det_plot {
        for &g in &opts.galleries {
            let rows: Vec<_> = report.rows.iter().filter(|r| r.gallery == g).collect();
            let pts: Vec<Vec<(f64, f64)>> = rows
                .iter()
                .map(|r| r.det.iter().map(|p| (p.fpir, p.fnir)).collect())
                .collect();
            let curves: Vec<plot::Curve> = rows
                .iter()
                .zip(&pts)
                .map(|(r, p)| plot::Curve {
                    label: r.label.clone(),
                    points: p,
                })
                .collect();
            let path = PathBuf::from(format!("{}-{g}.png", prefix.display()));
            let title = format!("DET, open set, {} enrolled ({})", g, models.embedder.name);
            plot::det_png(&path, &title, &plot::OPEN_SET_AXES, &curves)
                .with_context(|| format!("writing {}", path.display()))?;
            if !as_json {
                println!("DET plot written to {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
