//! Single-threaded tract latency of every model in a models directory, on the same input
//! tensor `models/convert/ort_bench.py` gives onnxruntime (`tests/fixtures/ort/<stem>.input.f32`),
//! so the two can be put side by side (`scripts/tract-vs-ort`). Also the ARM cost probe: run
//! it under qemu-user with `--runs` small and count instructions.
//!
//! Usage: model_timing [--models DIR] [--fixtures DIR] [--frame JPEG] [--runs N] [--warmup N]
//!                     [--only STEM|STAGE] [--json] [--profile]
//!
//! `--profile` also prints where the time goes: total per operator type over the runs,
//! measured around each node's evaluation (tract's own plan, one node at a time).
//!
//! `--only STAGE` runs one per-frame stage of the liveness path instead of a bare network,
//! on the face of `--frame` (default `tests/fixtures/faces/obama_1.jpg`) scaled into a
//! 640×480 frame, as `benches/vision.rs` does; the face is detected once, before the warm-up:
//! - `liveness-frame`: what the door runs on each usable face (crop ×2.7, 128×128 BGR, the
//!   liveness network, the model-free cues, the fused score: `liveness::Checker::frame`);
//! - `liveness-cues`: the model-free cues alone (FFT, bezel, glare, colour);
//! - `landmarks-frame`: the 68 landmarks (crop, 64×64 grey, the landmark network), run on each
//!   detected face when `challenge = "turn"`.
//!
//! Stages only run when named: without `--only` the bare networks are timed, as before.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use facegate::vision::liveness::{
    ChallengeKind, Checker, LivenessConfig, LivenessModels, cnn::Cnn, cues::CueMeter,
};
use facegate::vision::model::{ModelCard, list_cards};
use facegate::vision::{DetectParams, Models, Pipeline, VisionParams, frame, resample};
use tract_onnx::prelude::*;

/// The per-frame stages `--only` can name (see the comment at the top).
const STAGES: [&str; 3] = ["liveness-frame", "liveness-cues", "landmarks-frame"];

/// `warmup` untimed calls of `step`, then `runs` timed ones; the times in ms, sorted.
fn time_runs(warmup: usize, runs: usize, mut step: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    for _ in 0..warmup {
        step()?;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        step()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// One per-frame liveness stage on the face of `photo` scaled into a 640×480 frame.
fn time_stage(
    stage: &str,
    models: &std::path::Path,
    photo: &std::path::Path,
    warmup: usize,
    runs: usize,
) -> Result<Vec<f64>> {
    let photo = frame::read_image(photo, frame::DEFAULT_MAX_PIXELS)
        .with_context(|| format!("reading {}", photo.display()))?;
    let s = (640.0 / photo.width() as f32).min(480.0 / photo.height() as f32);
    let img = resample::warp(
        &photo,
        &resample::Affine::scale_translate(1.0 / s, 0.0, 0.0),
        640,
        480,
    );
    let params = VisionParams {
        flip: false,
        detect: DetectParams {
            refine: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let det = Pipeline::new(&Models::load(models, "blazeface-front-128", None)?, params)?
        .detect(&img)?
        .into_iter()
        .next()
        .context("no face found in the --frame photo")?;
    let config = LivenessConfig {
        challenge: ChallengeKind::Turn,
        ..LivenessConfig::default()
    };
    let live = LivenessModels::load(models, &config)?;
    let mut checker = Checker::new(&live)?;
    match stage {
        "liveness-frame" => time_runs(warmup, runs, || {
            checker.frame(&img, &det)?;
            Ok(())
        }),
        "liveness-cues" => {
            let mut cnn = Cnn::new(&live.card, &live.card.load_plan()?)?;
            cnn.live_score(&img, &det.bbox)?;
            let crop = cnn.crop().clone();
            let mut meter = CueMeter::new();
            let scale = live.crop_scale();
            time_runs(warmup, runs, || {
                meter.measure(&img, &det.bbox, &crop, scale);
                Ok(())
            })
        }
        "landmarks-frame" => time_runs(warmup, runs, || {
            checker
                .landmarks(&img, &det)
                .context("landmark model not loaded")??;
            Ok(())
        }),
        other => bail!("unknown stage {other:?}; stages: {}", STAGES.join(", ")),
    }
}

fn input_for(card: &ModelCard, fixtures: &std::path::Path) -> Result<Tensor> {
    let stem = card
        .path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shape = card.input_shape();
    let n: usize = shape.iter().product();
    let file = fixtures.join(format!("{stem}.input.f32"));
    let data: Vec<f32> = match std::fs::read(&file) {
        Ok(bytes) if bytes.len() == n * 4 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        // No reference input: a fixed pattern in the model's input range.
        _ => (0..n)
            .map(|i| ((i * 7919) % 255) as f32 / 127.5 - 1.0)
            .collect(),
    };
    Ok(tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), data)?.into())
}

fn main() -> Result<()> {
    let mut models = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models"));
    let mut fixtures = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ort"));
    let mut photo = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/faces/obama_1.jpg"
    ));
    let (mut runs, mut warmup, mut json, mut only, mut profile) =
        (100usize, 10usize, false, None::<String>, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--models" => models = args.next().context("--models DIR")?.into(),
            "--fixtures" => fixtures = args.next().context("--fixtures DIR")?.into(),
            "--frame" => photo = args.next().context("--frame JPEG")?.into(),
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--warmup" => warmup = args.next().context("--warmup N")?.parse()?,
            "--only" => only = Some(args.next().context("--only STEM")?),
            "--json" => json = true,
            "--profile" => profile = true,
            other => bail!(
                "unknown argument {other:?}; see the comment at the top of examples/model_timing.rs"
            ),
        }
    }
    let mut results = serde_json::Map::new();
    if let Some(stage) = only.as_deref().filter(|o| STAGES.contains(o)) {
        let times = time_stage(stage, &models, &photo, warmup, runs)?;
        let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
        if json {
            results.insert(
                stage.to_string(),
                serde_json::json!({"median_ms": median, "runs": runs}),
            );
        } else {
            println!("stage {stage} median_ms={median:.3}");
        }
    }
    for card in list_cards(&models)? {
        let stem = card
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if only.as_ref().is_some_and(|o| *o != stem) {
            continue;
        }
        let plan = card.load_plan()?;
        let mut state = TypedSimpleState::new(&plan)?;
        let input = input_for(&card, &fixtures)?;
        for _ in 0..warmup {
            state.run(tvec!(input.clone().into()))?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let x = input.clone().into();
            let t = Instant::now();
            state.run(tvec!(x))?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        if profile {
            print_profile(&stem, &mut state, &input, runs.max(1))?;
        }
        let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
        if json {
            results.insert(stem, serde_json::json!({"median_ms": median, "runs": runs}));
        } else {
            println!("tract {stem} median_ms={median:.3}");
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"runtime": "tract-onnx 0.23.9", "arch": std::env::consts::ARCH, "results": results})
        );
    }
    Ok(())
}

/// Time per operator type, summed over `runs` evaluations.
fn print_profile(
    stem: &str,
    state: &mut TypedSimpleState,
    input: &Tensor,
    runs: usize,
) -> Result<()> {
    use std::collections::HashMap;
    let mut by_op: HashMap<String, (f64, usize)> = HashMap::new();
    for _ in 0..runs {
        state.run_plan_with_eval(tvec!(input.clone().into()), |ctx, st, node, inputs| {
            let t = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
            let e = by_op.entry(node.op().name().to_string()).or_default();
            e.0 += t.elapsed().as_secs_f64() * 1e3;
            e.1 += 1;
            r
        })?;
    }
    let total: f64 = by_op.values().map(|v| v.0).sum();
    let mut rows: Vec<_> = by_op.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!(
        "profile {stem}: {:.3} ms per run in nodes",
        total / runs as f64
    );
    for (op, (ms, n)) in rows.iter().take(12) {
        println!(
            "  {op:<28} {:>8.3} ms/run {:>5.1}%  ({} nodes)",
            ms / runs as f64,
            100.0 * ms / total,
            n / runs
        );
    }
    Ok(())
}
