//! The use-cases: what facegate does for a request, written once and called by every front
//! end. The HTTP API's routes, the command line (`facegate gallery …`, `facegate enroll`) and
//! the web console are thin callers: they turn their input into a request, call one of these,
//! and render the typed result. Each use-case does gallery → decision → audit: it applies the
//! rules (the duplicate-face rule, the decision core), writes the gallery, and publishes its
//! audit event through the process's one event fan-out ([`Sinks`]); a change (enrollment,
//! deletion, unlock) returns only once its event is on disk.
//!
//! Vision stays with the caller, because each front end runs it its own way (the API on its
//! bounded inference slots, the command line on its own pipeline), but through the one
//! function per use-case given here: [`enroll::look`] for enrollment photos, [`probe_faces`]
//! for verification and identification photos.
//!
//! | use-case | function |
//! |---|---|
//! | enroll photos of a person | [`UseCases::enroll`] |
//! | remove a person / one face template | [`UseCases::remove_person`], [`UseCases::remove_face`] |
//! | 1:N, who is this? | [`UseCases::identify`] |
//! | 1:1, is this the claimed person? | [`UseCases::verify`] |
//! | unlock the door remotely | [`UseCases::unlock`] |
//!
//! The door decides through the same decision function as [`UseCases::identify`]
//! ([`crate::access::probe::observe`]); its records reach the same fan-out from the door's
//! records thread.

pub mod enroll;
pub mod identify;
pub mod remove;
pub mod unlock;
pub mod verify;

use std::sync::Arc;

use super::sink::{SinkError, Sinks};
use crate::access::EventSource;
use crate::access::NewEvent;
use crate::access::daemon::Record;
use crate::access::decision::OperatingPoint;
use crate::gallery::{Gallery, GalleryError, Person, now_ms};
use crate::vision::liveness::{Mode, StillLiveness};
use crate::vision::{BBox, Models, Pipeline, Quality, Rejection, VisionError};

pub use enroll::{EnrollPhoto, EnrollRequest, Enrollment, PhotoOutcome, PhotoRefusal, Who};
pub use identify::{FaceDecision, Identification};
pub use unlock::UnlockError;
pub use verify::Verification;

/// Why a use-case failed as a whole (a refused photo is not a failure: it is in the result).
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    #[error("no person with id {0:?}")]
    NoPerson(String),
    #[error(transparent)]
    Gallery(#[from] GalleryError),
    /// The gallery was changed, but its audit event could not be made durable.
    #[error("audit log: {0}")]
    Record(#[from] SinkError),
}

/// The use-cases over one gallery, with the rules in force. Cheap to clone.
#[derive(Clone)]
pub struct UseCases {
    pub gallery: Arc<dyn Gallery>,
    /// Where every use-case's audit event goes.
    pub sinks: Sinks,
    /// The same-person threshold (cosine) of 1:1 verification and of the duplicate-face rule.
    pub threshold: f32,
    /// The 1:N decision rule for one photo (threshold for the target FPIR at the gallery's
    /// size, margin): the door's decision core, for a photo instead of a visit.
    pub operating: Arc<OperatingPoint>,
    /// Candidates per search.
    pub top_k: usize,
}

impl UseCases {
    /// The person's record, or [`UseCaseError::NoPerson`] (callers check before running vision).
    pub async fn person(&self, id: &str) -> Result<Person, UseCaseError> {
        self.gallery
            .person(id)
            .await?
            .ok_or_else(|| UseCaseError::NoPerson(id.to_owned()))
    }

    /// Publish the events of a change (enrollment, deletion, unlock) and wait until they are
    /// durable: an acknowledged change has its audit event on disk.
    fn publish(&self, events: Vec<NewEvent>) -> Result<(), SinkError> {
        self.sinks.publish(&records(events))
    }

    /// Publish the events of a decision (verify, identify), like the door's: written at once,
    /// flushed with the log's next flush (sled's, every half second, and at every stop), not
    /// before the answer; a sync per request would serialise every verification on the disk.
    fn publish_decision(&self, events: Vec<NewEvent>) {
        self.sinks.publish_soon(&records(events));
    }
}

fn records(events: Vec<NewEvent>) -> Vec<Record> {
    let at_ms = now_ms();
    events
        .into_iter()
        .map(|event| Record::Request { at_ms, event })
        .collect()
}

/// The front end a request came from, as the audit log names it.
pub type Source = EventSource;

/// One face found in a probe photo (verification, identification).
#[derive(Debug, Clone)]
pub struct ProbeFace {
    pub bbox: BBox,
    pub quality: Quality,
    /// The normalised embedding, or why the face cannot be judged.
    pub embedding: Result<Vec<f32>, Rejection>,
    /// `None` when liveness is off for the API (`liveness.api = "off"`) or no model is loaded.
    pub liveness: Option<StillLiveness>,
}

/// How a probe photo's liveness is judged: the liveness model's threshold and `liveness.api`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhotoLiveness {
    pub mode: Mode,
    pub threshold: f32,
}

impl PhotoLiveness {
    /// From the loaded models; `None` without a liveness model or with `liveness.api = "off"`.
    pub fn of(models: &Models) -> Option<PhotoLiveness> {
        models
            .liveness
            .as_ref()
            .map(|l| PhotoLiveness {
                mode: l.config.api,
                threshold: l.config.threshold,
            })
            .filter(|p| p.mode != Mode::Off)
    }
}

/// Find, align and embed every face of a decoded photo, largest first, each with its
/// still-image liveness when `liveness` says so ([`PhotoLiveness::of`] the pipeline's models).
pub fn probe_faces(
    pipeline: &mut Pipeline,
    img: &image::RgbImage,
    liveness: Option<PhotoLiveness>,
) -> Result<Vec<ProbeFace>, VisionError> {
    let mut faces = Vec::new();
    for f in pipeline.analyse(img)? {
        let live = liveness.map(|l| {
            StillLiveness::judge(l.mode, l.threshold, pipeline.liveness(img, &f.detection))
        });
        faces.push(ProbeFace {
            bbox: f.detection.bbox,
            quality: f.quality,
            embedding: f.embedding.map(|e| e.0),
            liveness: live,
        });
    }
    Ok(faces)
}
