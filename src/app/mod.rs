//! The application: what `facegate run` and `facegate serve` share, in the library so that
//! the command line stays a thin adapter.
//!
//! - [`App::open`]: resolve the models and the recognition threshold, open the gallery and the
//!   audit log, in that order, each failure with the path it concerns.
//! - [`Shutdown`]: one shutdown signal (SIGINT and SIGTERM alike) fanned out to every task and
//!   thread.
//! - [`space`]: the free-space guard in front of every write to the gallery and the audit log
//!   (a full disk is refused early and clearly, never half-written).
//! - [`usecases`]: enroll, remove, identify, verify, unlock: what the HTTP API and the command
//!   line do for a request, written once ([`App::use_cases`]).
//! - [`sink`]: the one event fan-out ([`App::sinks`]) that the door's records and the
//!   use-cases' audit events go through.

pub mod door;
pub mod shutdown;
pub mod sink;
pub mod space;
pub mod usecases;

use std::path::PathBuf;
use std::sync::Arc;

use crate::access::AuditLog;
use crate::access::audit::AuditError;
use crate::access::calibration::ProbeKind;
use crate::access::decision::OperatingPoint;
use crate::config::Config;
use crate::gallery::{self, GalleryError, ModelTag};
use crate::vision::{Models, VisionError};
pub use shutdown::{Shutdown, StopReason};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(
        "no models directory found: set vision.models_dir in the config or FACEGATE_MODELS, or \
         run from the source tree (models/)"
    )]
    NoModels,
    #[error("loading models from {dir}: {source}")]
    Models { dir: PathBuf, source: VisionError },
    #[error(
        "no recognition threshold: set recognition.threshold in the config (the model card {card} \
         has none)"
    )]
    NoThreshold { card: PathBuf },
    #[error("opening the gallery at {path}: {source}")]
    Gallery { path: PathBuf, source: GalleryError },
    #[error("opening the audit log at {path}: {source}")]
    Audit { path: PathBuf, source: AuditError },
    #[error(transparent)]
    Recognition(#[from] crate::access::recognition::RecognitionError),
}

/// Load the configured models (`embedder` overrides the configured embedder by card name).
pub fn load_models(config: &Config, embedder: Option<&str>) -> Result<Models, AppError> {
    let dir = config.vision.models_dir().ok_or(AppError::NoModels)?;
    let embedder = embedder.or(config.vision.embedder_name());
    Models::load(&dir, &config.vision.detector, embedder)
        .and_then(|m| m.with_liveness(&dir, &config.liveness))
        .map_err(|source| AppError::Models { dir, source })
}

/// The same-person threshold: the configuration's, else the model card's.
pub fn threshold(config: &Config, models: &Models) -> Result<f32, AppError> {
    config
        .recognition
        .threshold
        .or(models.recommended_threshold())
        .ok_or_else(|| AppError::NoThreshold {
            card: models.embedder.path.clone(),
        })
}

/// Open the audit log the configuration names (beside the gallery by default), sealed with the
/// device key, with the configured face crop retention.
pub fn open_audit(
    config: &Config,
    device_key: &crate::crypto::DeviceKey,
) -> Result<AuditLog, AppError> {
    let path = config.api.audit_path(&config.gallery.path());
    AuditLog::open(&path, config.api.audit_max_events, device_key)
        .and_then(|log| log.with_crop_retention(config.access.crop_retention()))
        .map_err(|source| AppError::Audit { path, source })
}

/// What a running facegate works with: models, threshold, gallery, audit log, and the
/// shutdown signal.
pub struct App {
    pub models: Arc<Models>,
    /// Same-person threshold (cosine).
    pub threshold: f32,
    pub gallery: gallery::Opened,
    pub gallery_path: PathBuf,
    pub audit: Arc<AuditLog>,
    /// The decision rule for a visit at the door (fused frames), following the gallery's size.
    pub visit_rule: Arc<OperatingPoint>,
    /// The decision rule for one photo at the API, following the gallery's size.
    pub image_rule: Arc<OperatingPoint>,
    pub shutdown: Shutdown,
    /// The one event fan-out: the audit log (on the free-space guard), and whatever a front
    /// end adds (`facegate run` adds its JSON lines).
    pub sinks: sink::Sinks,
}

/// The decision rule for `probe` (photos at the API, visits at the door): the threshold for the
/// configured target FPIR, re-derived as the local gallery `cache` grows.
pub fn operating_point(
    config: &Config,
    models: &Models,
    probe: ProbeKind,
    cache: &Arc<gallery::Cache>,
) -> Result<Arc<OperatingPoint>, AppError> {
    let op = config
        .recognition
        .operating_point(&models.embedder, probe)?;
    let cache = Arc::clone(cache);
    op.follow(Box::new(move || cache.template_count()));
    Ok(Arc::new(op))
}

/// The MQTT and webhook sink when either is configured, its queue in "events-out" beside the
/// audit log, its tasks on `rt`; `door` is what the MQTT unlock command drives.
pub fn events_out_sink(
    app: &App,
    config: &Config,
    rt: &tokio::runtime::Runtime,
    door: Option<Arc<dyn crate::api::DoorControl>>,
) -> Result<Option<crate::events_out::EventsOut>, crate::events_out::EventsOutError> {
    if !crate::events_out::configured(&config.mqtt, &config.webhooks) {
        return Ok(None);
    }
    let dir = match app.audit.path().parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(crate::events_out::queue::DIR_NAME),
        _ => PathBuf::from(crate::events_out::queue::DIR_NAME),
    };
    crate::events_out::EventsOut::start(
        &config.mqtt,
        &config.webhooks,
        &dir,
        &app.gallery.device_key,
        rt.handle(),
        crate::events_out::DoorSide {
            door,
            audit: Arc::clone(&app.audit),
        },
    )
    .map(Some)
}

impl App {
    /// Load the models, find the threshold, open the gallery and the audit log.
    pub fn open(config: &Config) -> Result<App, AppError> {
        let models = load_models(config, None)?;
        let threshold = threshold(config, &models)?;
        let model = ModelTag::new(&models.embedder.name, models.dim());
        let gallery_path = config.gallery.path();
        let opened = gallery::open(&config.gallery, &config.milvus, &model, threshold).map_err(
            |source| AppError::Gallery {
                path: gallery_path.clone(),
                source,
            },
        )?;
        let audit = Arc::new(open_audit(config, &opened.device_key)?);
        let space = space::SpaceGuard::new(
            vec![gallery_path.clone(), audit.path().to_owned()],
            space::RESERVE_BYTES,
        );
        let sinks = sink::Sinks::audit(Arc::clone(&audit), space);
        let visit_rule = operating_point(config, &models, ProbeKind::Visit, &opened.cache)?;
        let image_rule = operating_point(config, &models, ProbeKind::Image, &opened.cache)?;
        Ok(App {
            models: Arc::new(models),
            threshold,
            gallery: opened,
            gallery_path,
            audit,
            visit_rule,
            image_rule,
            shutdown: Shutdown::new(),
            sinks,
        })
    }

    /// The use-cases over this application's gallery, rules and event fan-out.
    pub fn use_cases(&self, config: &Config) -> usecases::UseCases {
        usecases::UseCases {
            gallery: Arc::clone(&self.gallery.gallery),
            sinks: self.sinks.clone(),
            threshold: self.threshold,
            operating: Arc::clone(&self.image_rule),
            top_k: config.gallery.top_k,
        }
    }

    /// The free-space guard of the gallery's and the audit log's filesystems.
    pub fn space_guard(&self) -> space::SpaceGuard {
        space::SpaceGuard::new(
            vec![self.gallery_path.clone(), self.audit.path().to_owned()],
            space::RESERVE_BYTES,
        )
    }

    /// The parts of the HTTP API this application provides (the door is attached by `run`).
    pub fn api_parts(
        &self,
        config: &Config,
        door: Option<Arc<dyn crate::api::DoorControl>>,
    ) -> crate::api::ApiParts {
        crate::api::ApiParts {
            gallery: Arc::clone(&self.gallery.gallery),
            audit: Arc::clone(&self.audit),
            models: Arc::clone(&self.models),
            vision: config.vision.params(),
            threshold: self.threshold,
            operating: Arc::clone(&self.image_rule),
            top_k: config.gallery.top_k,
            max_image_pixels: config.vision.max_image_pixels,
            door,
        }
    }
}
