//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facegate::vision::{Embedding, Models, Pipeline, VisionParams, frame};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/faces").join(name)
}

/// The shipped models, loaded once per test binary.
pub fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        Models::load(
            &repo().join("models"),
            "blazeface-front-128",
            Some("mobilefacenet"),
        )
        .expect("shipped models load")
    })
}

pub fn pipeline() -> Pipeline {
    Pipeline::new(models(), VisionParams::default()).expect("pipeline")
}

/// `../shared/faces` beside the repository. On a clone without it the calling test is
/// skipped with a printed reason, except under CI, where its absence is a failure.
pub fn shared_faces() -> Option<PathBuf> {
    let dir = repo().join("../shared/faces");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing, and CI=true: the shared face photos are required in CI",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: {} not found (a clone without ../shared)",
        dir.display()
    );
    None
}

/// Embedding of the largest usable face in an image file.
pub fn embed_largest(p: &mut Pipeline, path: &Path) -> Embedding {
    let img = frame::read_image(path, frame::DEFAULT_MAX_PIXELS)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let faces = p
        .analyse(&img)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let face = faces
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{}: no face", path.display()));
    face.embedding
        .unwrap_or_else(|r| panic!("{}: {r}", path.display()))
}

/// Files in a directory with one of the given extensions, sorted.
pub fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                matches!(
                    x.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "pgm"
                )
            })
        })
        .collect();
    v.sort();
    v
}
