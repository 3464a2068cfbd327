//! The JSON bodies the API answers with, as types: the handlers in [`super::routes`] return
//! them and the OpenAPI document ([`super::openapi`]) takes their schemas from the same types
//! (`utoipa::ToSchema`). Bodies that are library records (a person, an event page, the door's
//! state) are those types themselves; errors are [`super::error::ErrorBody`].

use serde::Serialize;
use utoipa::ToSchema;

use crate::access::audit::Outcome;
use crate::access::decision::{OperatingState, Refusal};
use crate::api::error::ErrorBody;
use crate::gallery::{Match, Person, RemoteState, Removed, Source};
use crate::vision::liveness::StillLiveness;
use crate::vision::{BBox, Quality};

/// `GET /healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always "ok": the process answers.
    pub status: &'static str,
}

/// The models the server runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsInfo {
    pub detector: String,
    pub embedder: String,
    /// Embedding dimension.
    pub dim: usize,
}

/// The local gallery: open, and its counts when it answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct GalleryState {
    pub open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub persons: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates: Option<usize>,
    /// Writes queued for the central gallery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbox_depth: Option<usize>,
}

/// The clock, as `facegate doctor` checks it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockState {
    /// Today (UTC), "YYYY-MM-DD".
    pub utc_date: String,
    /// The clock is set (not near 1970).
    pub set: bool,
}

/// Free space of the gallery's disk.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskState {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub free_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// "ok", "low", "full", or "unknown" (could not be measured).
    pub state: &'static str,
}

/// What `facegate doctor` checks of the machine that a running server reports cheaply.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostState {
    pub clock: ClockState,
    /// `null` when the guarded path has no existing directory.
    pub disk: Option<DiskState>,
}

/// `GET /readyz` (200): ready, or degraded (the central gallery is offline).
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// "ready" or "degraded".
    pub status: &'static str,
    pub models: ModelsInfo,
    pub gallery: GalleryState,
    /// The central gallery (Milvus).
    pub milvus: RemoteState,
    /// Unix ms of the last successful sync with the central gallery (0 = never).
    pub last_sync_ms: i64,
    /// The 1:N decision rule in force.
    pub recognition: OperatingState,
    pub host: HostState,
}

/// `GET /readyz` (503): the gallery does not answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    /// "not_ready".
    pub status: &'static str,
    /// "gallery_unavailable".
    pub error: &'static str,
    pub detail: String,
    pub models: ModelsInfo,
    pub gallery: GalleryState,
    pub host: HostState,
}

/// `GET /v1/persons`: one page, ordered by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonPage {
    pub persons: Vec<Person>,
    /// The last id of a full page (pass it as `after`); `null` on the last page.
    pub next: Option<String>,
}

/// `GET /v1/persons/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonWithFaces {
    pub person: Person,
    /// The ids of the person's face templates.
    pub faces: Vec<u64>,
}

/// `DELETE /v1/persons/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonRemoved {
    pub person: String,
    pub removed: Removed,
}

/// `DELETE /v1/faces/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceRemoved {
    pub face: u64,
    pub removed: Removed,
    /// Set when the template was not in the local gallery.
    pub note: Option<&'static str>,
}

/// `POST /v1/persons/{id}/faces`: what became of each photo.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enrollment {
    pub person: String,
    /// Photos stored now.
    pub enrolled: usize,
    /// Photos enrolled for this person before (nothing stored).
    pub already_enrolled: usize,
    pub rejected: usize,
    /// The new templates' ids; `null` when nothing was written.
    pub templates: Option<Vec<u64>>,
    /// The central gallery confirmed the write (`false`: queued); `null` when nothing was
    /// written.
    pub remote_confirmed: Option<bool>,
    /// One per photo, in the order sent.
    pub results: Vec<PhotoResult>,
}

/// One enrollment photo's result, by `status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PhotoResult {
    Enrolled {
        index: usize,
        filename: Option<String>,
        template: u64,
        quality: Option<Quality>,
    },
    /// The same photo is enrolled for this person already.
    AlreadyEnrolled {
        index: usize,
        filename: Option<String>,
        template: u64,
        score: f32,
        detail: String,
        quality: Option<Quality>,
    },
    /// Refused: the error this photo alone would have got, and its HTTP status.
    Rejected {
        index: usize,
        filename: Option<String>,
        http_status: u16,
        #[serde(flatten)]
        error: ErrorBody,
    },
}

/// Where a face is and how usable it looked.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceSeen {
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub quality: Quality,
}

/// `POST /v1/verify`: the checked face against the claimed person.
#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    pub person: String,
    /// The person's display name, when the face matches them.
    pub name: Option<String>,
    /// Best score against the person's templates; `null` when they have none.
    pub score: Option<f32>,
    pub threshold: f32,
    /// `score >= threshold`.
    #[serde(rename = "match")]
    pub matches: bool,
    pub decision: Outcome,
    /// Why it was refused, in words.
    pub reason: Option<String>,
    pub template: Option<u64>,
    pub faces_in_image: usize,
    pub face: Option<FaceSeen>,
    /// `null` when liveness is off for the API or no model is loaded.
    pub liveness: Option<StillLiveness>,
}

/// `POST /v1/identify`: a decision per face, and the photo's.
#[derive(Debug, Serialize, ToSchema)]
pub struct Identification {
    pub threshold: f32,
    /// The decision rule in force (absent when the photo has no face).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<OperatingState>,
    /// Granted if any face is, else that of the largest face; no_face without a face.
    pub decision: Outcome,
    /// Largest first.
    pub faces: Vec<IdentifiedFace>,
}

/// One face of an identified photo: usable and decided, or not usable.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum IdentifiedFace {
    Decided(DecidedFace),
    Unusable(UnusableFace),
}

/// A usable face, decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecidedFace {
    pub index: usize,
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub quality: Quality,
    /// `true`.
    pub usable: bool,
    pub decision: Outcome,
    /// Why it was refused, in words.
    pub reason: Option<String>,
    /// Why it was refused, typed.
    pub refusal: Option<Refusal>,
    pub person: Option<String>,
    pub name: Option<String>,
    pub score: Option<f32>,
    pub liveness: Option<StillLiveness>,
    /// Best first, one per person.
    pub candidates: Vec<Match>,
    pub source: Source,
}

/// A face that could not be judged.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnusableFace {
    pub index: usize,
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub quality: Quality,
    /// `false`.
    pub usable: bool,
    /// no_face.
    pub decision: Outcome,
    pub rejection: FaceRejection,
    /// Empty.
    pub candidates: Vec<Match>,
}

/// Why a face could not be judged.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceRejection {
    /// A reason code (too_small, too_turned, ...).
    pub reason: &'static str,
    pub detail: String,
}
