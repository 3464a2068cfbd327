//! Single-threaded tract latency of every model in a models directory, on the same input
//! tensor `models/convert/ort_bench.py` gives onnxruntime (`tests/fixtures/ort/<stem>.input.f32`),
//! so the two can be put side by side (`scripts/tract-vs-ort`). Also the ARM cost probe: run
//! it under qemu-user with `--runs` small and count instructions.
//!
//! Usage: model_timing [--models DIR] [--fixtures DIR] [--runs N] [--warmup N] [--only STEM] [--json] [--profile]
//!
//! `--profile` also prints where the time goes: total per operator type over the runs,
//! measured around each node's evaluation (tract's own plan, one node at a time).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use facegate::vision::model::{ModelCard, list_cards};
use tract_onnx::prelude::*;

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
    let (mut runs, mut warmup, mut json, mut only, mut profile) =
        (100usize, 10usize, false, None::<String>, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--models" => models = args.next().context("--models DIR")?.into(),
            "--fixtures" => fixtures = args.next().context("--fixtures DIR")?.into(),
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
