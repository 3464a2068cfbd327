//! Enrollment photos: one photo → one usable face template, or a precise reason why not.
//! Shared by `facegate enroll`, `facegate gallery add` and the HTTP API.

use image::RgbImage;
use serde::Serialize;

use crate::vision::{Face, Pipeline, Rejection, VisionError};

/// Why an enrollment photo gives no template.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EnrollRejection {
    #[error("no face found")]
    NoFace,
    #[error("{count} faces found; choose one with a face index (0 = largest)")]
    SeveralFaces { count: usize },
    #[error("face index {index} asked for, but only {count} faces found")]
    NoSuchFace { index: usize, count: usize },
    #[error("face too small: eyes {eye_distance_px:.0} px apart, at least {min:.0} needed")]
    TooSmall { eye_distance_px: f32, min: f32 },
    #[error("head turned too far: about {yaw_deg:.0}° (limit {max:.0}°)")]
    TooTurned { yaw_deg: f32, max: f32 },
    #[error("head tilted too far: {roll_deg:.0}° (limit {max:.0}°)")]
    TooTilted { roll_deg: f32, max: f32 },
    #[error("face not usable: {detail}")]
    Unusable { detail: String },
    #[error("face too blurred: sharpness {sharpness:.0}, at least {min:.0} needed")]
    #[serde(rename = "too_blurred")]
    Blurred { sharpness: f32, min: f32 },
}

impl From<Rejection> for EnrollRejection {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::TooSmall {
                eye_distance_px,
                min,
            } => EnrollRejection::TooSmall {
                eye_distance_px,
                min,
            },
            Rejection::TooTurned { yaw_deg, max } => EnrollRejection::TooTurned { yaw_deg, max },
            Rejection::TooTilted { roll_deg, max } => EnrollRejection::TooTilted { roll_deg, max },
            Rejection::Degenerate => EnrollRejection::Unusable {
                detail: r.to_string(),
            },
        }
    }
}

impl EnrollRejection {
    /// The machine-readable reason code (`"no_face"`, `"too_blurred"`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            EnrollRejection::NoFace => "no_face",
            EnrollRejection::SeveralFaces { .. } => "several_faces",
            EnrollRejection::NoSuchFace { .. } => "no_such_face",
            EnrollRejection::TooSmall { .. } => "too_small",
            EnrollRejection::TooTurned { .. } => "too_turned",
            EnrollRejection::TooTilted { .. } => "too_tilted",
            EnrollRejection::Unusable { .. } => "unusable",
            EnrollRejection::Blurred { .. } => "too_blurred",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error(transparent)]
    Rejected(#[from] EnrollRejection),
    #[error(transparent)]
    Vision(#[from] VisionError),
}

/// Minimum sharpness (variance of the Laplacian of the aligned 112×112 crop) of an enrollment
/// face. The bundled fixture photos measure 250-1130; two of them blurred with a Gaussian of
/// sigma 3 measure 21 and 45 (`tests/gallery_enroll.rs` prints them).
pub const MIN_ENROLL_SHARPNESS: f32 = 60.0;

/// The one face of an enrollment photo, with its embedding. Several faces are refused unless
/// `index` picks one (0 = largest).
pub fn enrollment_face(
    pipeline: &mut Pipeline,
    img: &RgbImage,
    index: Option<usize>,
    min_sharpness: f32,
) -> Result<(Face, Vec<f32>), EnrollError> {
    let dets = pipeline.detect(img)?;
    let det = match (index, dets.len()) {
        (_, 0) => return Err(EnrollRejection::NoFace.into()),
        (None, 1) => &dets[0],
        (None, count) => return Err(EnrollRejection::SeveralFaces { count }.into()),
        (Some(i), count) => dets
            .get(i)
            .ok_or(EnrollRejection::NoSuchFace { index: i, count })?,
    };
    let face = pipeline.describe(img, det)?;
    let embedding = match &face.embedding {
        Ok(e) => e.0.clone(),
        Err(r) => return Err(EnrollRejection::from(r.clone()).into()),
    };
    if face.quality.sharpness < min_sharpness {
        return Err(EnrollRejection::Blurred {
            sharpness: face.quality.sharpness,
            min: min_sharpness,
        }
        .into());
    }
    Ok((face, embedding))
}
