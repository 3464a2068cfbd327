//! The HTTP API (axum): persons, enrollment, verify/identify, the audit log, the door, health
//! and metrics, under `/v1`. `facegate serve` runs it without a camera; the door daemon will
//! mount the same router with a [`DoorControl`] attached.
//!
//! [`routes`] is the one table of routes: the router, the auth and rate-limit layers and the
//! OpenAPI document are all made from it.

pub mod auth;
pub mod config;
pub mod door;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod responses;
mod route_table;
mod router;
pub mod routes;
pub mod server;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;

use crate::access::AuditLog;
use crate::app::sink::Sinks;
use crate::app::space::{self, SpaceGuard};
use crate::app::usecases::UseCases;
use crate::gallery::Gallery;
use crate::vision::{Models, VisionParams};
pub use auth::{Access, Tokens};
pub use config::ApiConfig;
pub use door::{DoorControl, DoorError, DoorStatus};
use limits::{Inference, RateLimiter};
use metrics::Metrics;

/// Everything the handlers share.
pub struct Api {
    pub gallery: Arc<dyn Gallery>,
    pub audit: Arc<AuditLog>,
    pub inference: Inference,
    pub rate: RateLimiter,
    pub tokens: Tokens,
    pub metrics: Metrics,
    pub door: Option<Arc<dyn DoorControl>>,
    /// Same-person threshold (cosine) of 1:1 verification and duplicate checks.
    pub threshold: f32,
    /// The 1:N decision rule of `/v1/identify` (threshold for the target FPIR at the gallery's
    /// size, margin): the door's decision core, for one photo.
    pub operating: Arc<crate::access::decision::OperatingPoint>,
    /// Candidates per identification.
    pub top_k: usize,
    pub max_image_pixels: u64,
    pub max_body_bytes: usize,
    /// Header-read and idle timeout of a connection.
    pub header_timeout: std::time::Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Checked before every request that writes (every method but GET): a full disk gets 507.
    pub space: SpaceGuard,
    /// The use-cases the routes call (enroll, remove, verify, identify, unlock): the same as
    /// the command line's.
    pub cases: UseCases,
    /// The web console, mounted at /console when attached ([`Api::with_console`]).
    pub console: Option<Arc<crate::console::Console>>,
}

pub type AppState = Arc<Api>;

/// What [`Api::new`] needs besides the `[api]` configuration.
pub struct ApiParts {
    pub gallery: Arc<dyn Gallery>,
    pub audit: Arc<AuditLog>,
    pub models: Arc<Models>,
    pub vision: VisionParams,
    pub threshold: f32,
    pub operating: Arc<crate::access::decision::OperatingPoint>,
    pub top_k: usize,
    pub max_image_pixels: u64,
    pub door: Option<Arc<dyn DoorControl>>,
}

impl Api {
    /// Fails when no admin token is configured: there is never an unauthenticated admin.
    pub fn new(config: &ApiConfig, parts: ApiParts) -> Result<Api, auth::TokenError> {
        let tokens = Tokens::new(&config.admin_token_sha256, &config.viewer_token_sha256)?;
        let space = SpaceGuard::new(vec![parts.audit.path().to_owned()], space::RESERVE_BYTES);
        let cases = UseCases {
            gallery: Arc::clone(&parts.gallery),
            sinks: Sinks::audit(Arc::clone(&parts.audit), space.clone()),
            threshold: parts.threshold,
            operating: Arc::clone(&parts.operating),
            top_k: parts.top_k,
        };
        Ok(Api {
            gallery: parts.gallery,
            inference: Inference::new(
                parts.models,
                parts.vision,
                config.slots(),
                config.queue_depth,
            ),
            rate: RateLimiter::new(config.rate_per_minute, config.rate_burst),
            tokens,
            metrics: Metrics::default(),
            door: parts.door,
            threshold: parts.threshold,
            operating: parts.operating,
            top_k: parts.top_k,
            max_image_pixels: parts.max_image_pixels,
            max_body_bytes: config.max_body_bytes,
            header_timeout: std::time::Duration::from_secs(config.header_timeout_s.max(1)),
            max_connections: config.max_connections.max(1),
            space,
            audit: parts.audit,
            cases,
            console: None,
        })
    }

    /// Publish the use-cases' audit events through this fan-out (the application's, shared
    /// with the door) instead of one of the audit log alone.
    pub fn with_sinks(mut self, sinks: Sinks) -> Api {
        self.cases.sinks = sinks;
        self
    }

    /// Serve the web console at /console as `[console]` says (nothing when it is disabled);
    /// `tls`: the server speaks TLS (the session cookie is then `Secure`).
    pub fn with_console(
        mut self,
        config: &crate::console::ConsoleConfig,
        tls: bool,
    ) -> Result<Api, crate::console::ConsoleError> {
        self.console = if config.enabled {
            Some(Arc::new(crate::console::Console::new(config, tls)?))
        } else {
            None
        };
        Ok(self)
    }

    /// Guard these filesystems instead (by default: the audit log's).
    pub fn with_space_guard(mut self, space: SpaceGuard) -> Api {
        self.space = space;
        self
    }
}

pub use route_table::{Body, JsonType, Reply, Route, routes};
pub use router::router;

/// The client's address, for the rate limit.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Serve the API on `listener` (HTTPS when `tls` is given) until `shutdown` completes, with
/// the connection limits of [`server`].
pub async fn serve<F>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    api: AppState,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let limits = server::ServerLimits {
        header_timeout: api.header_timeout,
        max_connections: api.max_connections,
    };
    server::serve(listener, tls, router(api), limits, shutdown).await
}
