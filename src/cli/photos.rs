//! Trying facegate on photos: `facegate detect`, `embed` and `compare`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use facegate::config::Config;
use facegate::vision::{self, Face, Pipeline};
use serde_json::json;

use crate::{load_models, threshold};

pub fn read(config: &Config, path: &Path) -> Result<image::RgbImage> {
    Ok(vision::frame::read_image(
        path,
        config.vision.max_image_pixels,
    )?)
}

pub fn face_json(f: &Face) -> serde_json::Value {
    let d = &f.detection;
    json!({
        "box": d.bbox,
        "score": d.score,
        "landmarks": d.landmarks,
        "quality": f.quality,
        "usable": f.embedding.is_ok(),
        "rejected": f.embedding.as_ref().err().map(|r| r.to_string()),
    })
}

pub fn detect(config: &Config, images: &[PathBuf], as_json: bool) -> Result<ExitCode> {
    let models = load_models(config, None)?;
    let mut pipeline = Pipeline::new(&models, config.vision.params())?;
    let mut failed = 0;
    let mut out = Vec::new();
    for path in images {
        let faces = read(config, path).and_then(|img| Ok(pipeline.analyse(&img)?));
        match faces {
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e:#}", path.display());
                out.push(json!({"file": path, "error": format!("{e:#}")}));
            }
            Ok(faces) if as_json => {
                out.push(
                    json!({"file": path, "faces": faces.iter().map(face_json).collect::<Vec<_>>()}),
                );
            }
            Ok(faces) => {
                println!(
                    "{}: {} face{}",
                    path.display(),
                    faces.len(),
                    if faces.len() == 1 { "" } else { "s" }
                );
                for (i, f) in faces.iter().enumerate() {
                    let b = &f.detection.bbox;
                    let q = &f.quality;
                    print!(
                        "  #{i} box {:.0},{:.0} {:.0}x{:.0}  score {:.2}  eyes {:.0}px  yaw {:+.0}°  roll {:+.0}°",
                        b.x,
                        b.y,
                        b.w,
                        b.h,
                        q.detector_score,
                        q.eye_distance_px,
                        q.yaw_deg,
                        q.roll_deg
                    );
                    match &f.embedding {
                        Ok(_) => println!("  sharpness {:.0}", q.sharpness),
                        Err(r) => println!("  not usable: {r}"),
                    }
                }
            }
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The embedding of face `index` (by size) in an image, with a clear error when there is none.
pub fn embed_face(
    config: &Config,
    pipeline: &mut Pipeline,
    path: &Path,
    index: usize,
) -> Result<vision::Embedding> {
    let img = read(config, path)?;
    let faces = pipeline
        .detect(&img)
        .with_context(|| path.display().to_string())?;
    let det = match faces.get(index) {
        Some(d) => d,
        None if faces.is_empty() => bail!("{}: no face found", path.display()),
        None => bail!(
            "{}: only {} faces found, no face #{index}",
            path.display(),
            faces.len()
        ),
    };
    let face = pipeline.describe(&img, det)?;
    face.embedding
        .map_err(|r| anyhow!("{}: face #{index} not usable: {r}", path.display()))
}

pub fn embed(
    config: &Config,
    path: &Path,
    index: usize,
    embedder: Option<&str>,
) -> Result<ExitCode> {
    let models = load_models(config, embedder)?;
    let mut pipeline = Pipeline::new(&models, config.vision.params())?;
    let e = embed_face(config, &mut pipeline, path, index)?;
    let out = json!({
        "file": path,
        "face": index,
        "model": models.embedder.name,
        "dim": e.dim(),
        "embedding": e.as_slice(),
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(ExitCode::SUCCESS)
}

pub fn compare(
    config: &Config,
    a: &Path,
    b: &Path,
    embedder: Option<&str>,
    as_json: bool,
) -> Result<ExitCode> {
    let models = load_models(config, embedder)?;
    let t = threshold(config, &models)?;
    let mut pipeline = Pipeline::new(&models, config.vision.params())?;
    let ea = embed_face(config, &mut pipeline, a, 0)?;
    let eb = embed_face(config, &mut pipeline, b, 0)?;
    let s = ea.cosine(&eb);
    let same = s >= t;
    if as_json {
        let out = json!({"a": a, "b": b, "similarity": s, "threshold": t, "same_person": same, "model": models.embedder.name});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "similarity {s:.4} (threshold {t:.4}): {}",
            if same {
                "same person"
            } else {
                "different people"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
