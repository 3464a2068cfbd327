//! The cost of one "look" and of each of its stages, single-threaded, on one photo: median
//! wall time over `--runs`, and a function to count instructions around (`scripts/look-cost`
//! runs this under `valgrind --tool=callgrind --toggle-collect=...measured...`, so only the
//! measured calls are counted: model loading, optimisation and warm-up are not).
//!
//! Usage: look_cost [--image PATH] [--runs N] [--warmup N] [--stage NAME]...
//!   stages: look (detect + closer look + align + embed with the mirror: the API's identify),
//!   detect (one detector pass), detect-refine (with the closer look), align, embed (one crop),
//!   embed-mirror (crop and mirror, the default), decode (the JPEG), tracked (what the door's
//!   face tracker does with a frame whose face it follows: one detector pass, the largest face
//!   aligned for its quality, no closer look, no embedder). Default: all of them.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use facegate::vision::{Models, Pipeline, VisionParams, align, frame};
use image::RgbImage;

const STAGES: [&str; 8] = [
    "decode",
    "detect",
    "detect-refine",
    "align",
    "embed",
    "embed-mirror",
    "look",
    "tracked",
];

fn main() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut image = root.join("tests/fixtures/faces/obama_1.jpg");
    let (mut runs, mut warmup) = (30usize, 3usize);
    let mut stages: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--image" => image = args.next().context("--image PATH")?.into(),
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--warmup" => warmup = args.next().context("--warmup N")?.parse()?,
            "--stage" => stages.push(args.next().context("--stage NAME")?),
            other => {
                bail!(
                    "unknown argument {other:?}; see the comment at the top of examples/look_cost.rs"
                )
            }
        }
    }
    if stages.is_empty() {
        stages = STAGES.iter().map(|s| s.to_string()).collect();
    }
    if let Some(s) = stages.iter().find(|s| !STAGES.contains(&s.as_str())) {
        bail!("unknown stage {s:?} (known: {})", STAGES.join(", "));
    }
    let bytes = std::fs::read(&image).with_context(|| format!("reading {}", image.display()))?;
    let photo = frame::decode_image(&bytes, frame::DEFAULT_MAX_PIXELS)?;
    let models = Models::load(&root.join("models"), "blazeface-front-128", None)?;
    let defaults = VisionParams::default();
    let mut p = Pipeline::new(&models, defaults.clone())?;
    let det = p
        .detect(&photo)?
        .into_iter()
        .next()
        .context("no face in the photo")?;
    let mut crop = RgbImage::new(112, 112);
    align::align_into(&photo, &det, &mut crop).map_err(|r| anyhow::anyhow!("{r:?}"))?;
    println!(
        "image {} ({}x{}), embedder {}",
        image.display(),
        photo.width(),
        photo.height(),
        models.embedder.name,
    );
    for stage in &stages {
        let mut call = || -> Result<()> {
            match stage.as_str() {
                "decode" => {
                    black_box(frame::decode_image(&bytes, frame::DEFAULT_MAX_PIXELS)?);
                }
                "detect" => {
                    p.params.detect.refine = false;
                    black_box(p.detect(&photo)?);
                    p.params.detect.refine = defaults.detect.refine;
                }
                "detect-refine" => {
                    black_box(p.detect(&photo)?);
                }
                "align" => {
                    let mut out = RgbImage::new(112, 112);
                    align::align_into(&photo, &det, &mut out)
                        .map_err(|r| anyhow::anyhow!("{r:?}"))?;
                    black_box(out);
                }
                "embed" => {
                    p.params.flip = false;
                    black_box(p.embed_crop(&crop)?);
                    p.params.flip = defaults.flip;
                }
                "embed-mirror" => {
                    p.params.flip = true;
                    black_box(p.embed_crop(&crop)?);
                    p.params.flip = defaults.flip;
                }
                "tracked" => {
                    let coarse = p.detect_coarse(&photo)?;
                    let face = coarse
                        .iter()
                        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
                        .context("no face")?;
                    black_box(p.align_face(&photo, face));
                }
                _ => {
                    black_box(p.analyse(&photo)?);
                }
            }
            Ok(())
        };
        for _ in 0..warmup {
            call()?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            measured(&mut call)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
        println!("stage {stage:<14} median_ms={median:.3} runs={runs}");
    }
    Ok(())
}

/// The measured call: callgrind counts the instructions executed inside this function only.
#[inline(never)]
fn measured(call: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    call()
}
