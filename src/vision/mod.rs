//! The vision path: frame → faces (detect) → aligned crops (align) → embeddings (embed).
//!
//! [`Models`] loads and optimises the networks once per process; each worker thread makes its
//! own [`Pipeline`] from them (cheap: the optimised plans are shared).

pub mod align;
pub mod detect;
pub mod embed;
pub mod frame;
pub mod liveness;
pub mod model;
pub mod resample;
pub mod selftest;

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Serialize;

pub use align::{AlignLimits, Geometry, Rejection};
pub use detect::{BBox, DetectParams, Detection, Point};
pub use embed::Embedding;
pub use frame::PixelFormat;
pub use model::{ModelCard, ModelKind, Plan};

use align::CROP;
use detect::Detector;
use embed::Embedder;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("cannot read model file {path}: {source}")]
    ModelFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model card {path} is invalid: {reason}")]
    ModelCard { path: PathBuf, reason: String },
    #[error(
        "model file {path} does not match its card: sha256 {actual}, the card says {expected} \
         (corrupt or replaced file; restore it or update the card)"
    )]
    ModelChecksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("cannot load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },
    #[error("no model {name:?} in {dir} (available: {})", known.join(", "))]
    ModelNotFound {
        dir: PathBuf,
        name: String,
        known: Vec<String>,
    },
    #[error("{what}: {reason}")]
    Image { what: String, reason: String },
    #[error("image is {width}x{height} pixels, more than the limit of {max_pixels}")]
    ImageTooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error(
        "image is {width}x{height} pixels of {} bytes each: {} MB decoded, more than the limit of {} MB (the pixel limit in 8-bit RGB); send an 8-bit JPEG or PNG",
        bytes / (u64::from(*width) * u64::from(*height)).max(1),
        bytes / 1_000_000,
        max_bytes / 1_000_000
    )]
    DecodedTooLarge {
        width: u32,
        height: u32,
        bytes: u64,
        max_bytes: u64,
    },
    #[error("model {model} failed: {reason}")]
    Inference { model: String, reason: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// Vision settings (the `[vision]` table of the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct VisionParams {
    pub detect: DetectParams,
    pub limits: AlignLimits,
    /// Average each face's embedding with its mirror image's (2× embedder cost).
    pub flip: bool,
}

impl Default for VisionParams {
    fn default() -> Self {
        VisionParams {
            detect: DetectParams::default(),
            limits: AlignLimits::default(),
            flip: true,
        }
    }
}

/// The detector and embedder, loaded and optimised once.
#[derive(Clone)]
pub struct Models {
    pub detector: ModelCard,
    detector_plan: Plan,
    pub embedder: ModelCard,
    embedder_plan: Plan,
    /// The liveness network and settings, when loaded ([`Models::with_liveness`]).
    pub liveness: Option<liveness::LivenessModels>,
}

impl Models {
    /// Load the named detector and embedder from `dir`. `embedder = None` picks the one whose
    /// card prefers this CPU architecture.
    pub fn load(dir: &Path, detector: &str, embedder: Option<&str>) -> Result<Models, VisionError> {
        let det = model::find_card(dir, detector, ModelKind::Detector)?;
        let emb = match embedder {
            Some(name) => model::find_card(dir, name, ModelKind::Embedder)?,
            None => model::default_embedder(dir)?,
        };
        tracing::debug!(detector = %det.name, embedder = %emb.name, "loading models");
        let detector_plan = det.load_plan()?;
        let embedder_plan = emb.load_plan()?;
        Ok(Models {
            detector: det,
            detector_plan,
            embedder: emb,
            embedder_plan,
            liveness: None,
        })
    }

    /// Also load the liveness model named in `config` from `dir` (unless liveness is off
    /// everywhere). Every [`Pipeline`] made from these models then has a liveness checker.
    pub fn with_liveness(
        mut self,
        dir: &Path,
        config: &liveness::LivenessConfig,
    ) -> Result<Models, VisionError> {
        self.liveness = if config.needed() {
            Some(liveness::LivenessModels::load(dir, config)?)
        } else {
            None
        };
        Ok(self)
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.embedder.embedder.as_ref().map_or(0, |e| e.dim)
    }

    /// The embedder card's recommended same-person threshold (cosine), if it has one.
    pub fn recommended_threshold(&self) -> Option<f32> {
        self.embedder.embedder.as_ref().and_then(|e| e.threshold)
    }
}

/// Quality measures of one face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Quality {
    pub detector_score: f32,
    pub face_width_px: f32,
    pub eye_distance_px: f32,
    pub roll_deg: f32,
    pub yaw_deg: f32,
    /// Variance of the Laplacian of the aligned crop (higher is sharper).
    pub sharpness: f32,
}

/// One face in a frame: where it is, how usable it is, and its embedding or why there is none.
#[derive(Debug, Clone)]
pub struct Face {
    pub detection: Detection,
    pub quality: Quality,
    /// The aligned 112×112 crop (empty when the face was refused before alignment).
    pub crop: RgbImage,
    pub embedding: Result<Embedding, Rejection>,
}

/// One detected face aligned but not embedded ([`Pipeline::align_face`]).
#[derive(Debug, Clone)]
pub struct Aligned {
    pub quality: Quality,
    /// The aligned 112×112 crop (empty when the face was refused).
    pub crop: RgbImage,
    /// Why the face cannot be embedded (too small, turned, tilted), if so.
    pub usable: Result<(), Rejection>,
}

/// Detect, align and embed. One per worker thread; not shared.
pub struct Pipeline {
    detector: Detector,
    embedder: Embedder,
    liveness: Option<liveness::Checker>,
    pub params: VisionParams,
}

impl Pipeline {
    pub fn new(models: &Models, params: VisionParams) -> Result<Pipeline, VisionError> {
        Ok(Pipeline {
            detector: Detector::new(&models.detector, &models.detector_plan, params.detect)?,
            embedder: Embedder::new(&models.embedder, &models.embedder_plan)?,
            liveness: models
                .liveness
                .as_ref()
                .map(liveness::Checker::new)
                .transpose()?,
            params,
        })
    }

    pub fn embedder_card(&self) -> &ModelCard {
        self.embedder.card()
    }

    pub fn detector_card(&self) -> &ModelCard {
        self.detector.card()
    }

    pub fn dim(&self) -> usize {
        self.embedder.dim()
    }

    /// Every face in the frame, largest first, without embeddings.
    pub fn detect(&mut self, frame: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        self.detector.params = self.params.detect;
        self.detector.detect(frame)
    }

    /// [`Pipeline::detect`] in two steps: the faces of the whole-frame view, before the closer
    /// look and the size limit...
    pub fn detect_coarse(&mut self, frame: &RgbImage) -> Result<Vec<Detection>, VisionError> {
        self.detector.params = self.params.detect;
        self.detector.detect_coarse(frame)
    }

    /// ...then the closer look at those faces (when `refine_landmarks` is on), largest first.
    pub fn refine(
        &mut self,
        frame: &RgbImage,
        coarse: Vec<Detection>,
    ) -> Result<Vec<Detection>, VisionError> {
        self.detector.params = self.params.detect;
        self.detector.refine(frame, coarse)
    }

    /// Align and embed one detected face.
    pub fn describe(&mut self, frame: &RgbImage, det: &Detection) -> Result<Face, VisionError> {
        let aligned = self.align_face(frame, det);
        let embedding = match aligned.usable {
            Err(r) => Err(r),
            Ok(()) => Ok(self.embedder.embed(&aligned.crop, self.params.flip)?),
        };
        Ok(Face {
            detection: det.clone(),
            quality: aligned.quality,
            crop: aligned.crop,
            embedding,
        })
    }

    /// Align one detected face and measure its quality, without embedding it (the door's
    /// tracker decides from the quality whether the face needs embedding again).
    pub fn align_face(&self, frame: &RgbImage, det: &Detection) -> Aligned {
        let geometry = align::geometry(det);
        let mut quality = Quality {
            detector_score: det.score,
            face_width_px: det.bbox.w,
            eye_distance_px: geometry.eye_distance_px,
            roll_deg: geometry.roll_deg,
            yaw_deg: geometry.yaw_deg,
            sharpness: 0.0,
        };
        let checked = align::check(det, &self.params.limits);
        let mut crop = RgbImage::new(CROP, CROP);
        let usable = checked.and_then(|_| align::align_into(frame, det, &mut crop));
        match usable {
            Err(_) => crop = RgbImage::new(0, 0),
            Ok(()) => quality.sharpness = align::sharpness(&crop),
        }
        Aligned {
            quality,
            crop,
            usable,
        }
    }

    /// Detect, align and embed every face in the frame, largest first.
    pub fn analyse(&mut self, frame: &RgbImage) -> Result<Vec<Face>, VisionError> {
        let dets = self.detect(frame)?;
        dets.iter().map(|d| self.describe(frame, d)).collect()
    }

    /// The liveness evidence of one detected face; `None` when no liveness model is loaded.
    pub fn liveness(
        &mut self,
        frame: &RgbImage,
        det: &Detection,
    ) -> Option<Result<liveness::FrameEvidence, VisionError>> {
        self.liveness.as_mut().map(|c| c.frame(frame, det))
    }

    /// The 68 landmarks of one detected face (the head-turn challenge); `None` when no
    /// landmark model is loaded.
    pub fn landmarks(
        &mut self,
        frame: &RgbImage,
        det: &Detection,
    ) -> Option<Result<Vec<Point>, VisionError>> {
        self.liveness.as_mut().and_then(|c| c.landmarks(frame, det))
    }

    /// Embed an already aligned 112×112 crop.
    pub fn embed_crop(&mut self, crop: &RgbImage) -> Result<Embedding, VisionError> {
        self.embedder.embed(crop, self.params.flip)
    }

    /// An aligned crop's embedding without and with its mirror image (two inferences).
    pub fn embed_plain_and_mirrored(
        &mut self,
        crop: &RgbImage,
    ) -> Result<(Embedding, Embedding), VisionError> {
        self.embedder.embed_plain_and_mirrored(crop)
    }
}
