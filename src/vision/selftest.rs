//! One real inference on a picture built into the binary, to prove the loaded models work on
//! this machine (`facegate doctor`): the face must be found, and its template must have the
//! embedder's size and be finite.

use std::time::{Duration, Instant};

use super::{Models, Pipeline, VisionError, VisionParams};

/// A 640x480-class photo with one frontal face (the bundled frame `frames/09_person_b.jpg`,
/// a copy of `tests/fixtures/faces/biden_1.jpg`; credits in that folder's CREDITS.md).
pub const TEST_IMAGE: &[u8] = include_bytes!("../../frames/09_person_b.jpg");

/// What the self-test measured.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfTest {
    pub faces: usize,
    /// Length of the template of the face.
    pub dim: usize,
    pub detector_score: f32,
    /// Detection, alignment and embedding of the test picture (decoding excluded).
    pub took: Duration,
}

/// Run the whole pipeline once on [`TEST_IMAGE`] with `params`.
pub fn self_test(models: &Models, params: VisionParams) -> Result<SelfTest, VisionError> {
    let fail = |reason: String| VisionError::Inference {
        model: format!("{} + {}", models.detector.name, models.embedder.name),
        reason,
    };
    let image = super::frame::decode_image(TEST_IMAGE, super::frame::DEFAULT_MAX_PIXELS)?;
    let mut pipeline = Pipeline::new(models, params)?;
    let start = Instant::now();
    let faces = pipeline.analyse(&image)?;
    let took = start.elapsed();
    let face = faces.first().ok_or_else(|| {
        fail("no face found in the built-in test picture (it holds one clear face)".into())
    })?;
    let embedding = face
        .embedding
        .as_ref()
        .map_err(|r| fail(format!("the test picture's face was refused: {r}")))?;
    if embedding.dim() != models.dim() {
        return Err(fail(format!(
            "the embedder gave {} values; its card {} says {}",
            embedding.dim(),
            models.embedder.path.display(),
            models.dim()
        )));
    }
    if !embedding.as_slice().iter().all(|x| x.is_finite()) {
        return Err(fail("the template holds non-finite values".into()));
    }
    Ok(SelfTest {
        faces: faces.len(),
        dim: embedding.dim(),
        detector_score: face.detection.score,
        took,
    })
}
