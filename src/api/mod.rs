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
pub mod routes;
pub mod server;
pub mod tls;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, delete, get, on, patch, post};
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
use error::ApiError;
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

/// What a route's request body is, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// A JSON object of the named schema.
    Json(&'static str),
    /// Image(s): a raw `image/jpeg` / `image/png` body or multipart file parts.
    Images,
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    /// axum/OpenAPI path syntax (`{id}`).
    pub path: &'static str,
    pub access: Access,
    /// Verify/identify: subject to the per-client rate limit.
    pub rate_limited: bool,
    /// Served only when a door is attached.
    pub door: bool,
    pub summary: &'static str,
    /// Query parameters: name, JSON type, description.
    pub query: &'static [(&'static str, &'static str, &'static str)],
    pub body: Body,
    /// Success status and the schema of its body.
    pub ok: (u16, &'static str),
    pub handler: MethodRouter<AppState>,
}

/// The table of every route.
pub fn routes() -> Vec<Route> {
    use routes::{door as d, events, faces, persons, recognize, system};
    let r = |method: Method,
             path: &'static str,
             access: Access,
             summary: &'static str,
             body: Body,
             ok: (u16, &'static str),
             handler: MethodRouter<AppState>| Route {
        method,
        path,
        access,
        rate_limited: false,
        door: false,
        summary,
        query: &[],
        body,
        ok,
        handler,
    };
    vec![
        r(
            Method::GET,
            "/healthz",
            Access::Public,
            "The process is alive.",
            Body::None,
            (200, "Health"),
            get(system::healthz),
        ),
        r(
            Method::GET,
            "/readyz",
            Access::Public,
            "Models loaded, gallery open, central gallery (Milvus) state; 503 when the gallery does not answer.",
            Body::None,
            (200, "Ready"),
            get(system::readyz),
        ),
        r(
            Method::GET,
            "/metrics",
            Access::Viewer,
            "Prometheus metrics (text exposition format).",
            Body::None,
            (200, "text"),
            get(system::metrics),
        ),
        r(
            Method::GET,
            "/v1/openapi.json",
            Access::Public,
            "This document.",
            Body::None,
            (200, "object"),
            get(system::openapi),
        ),
        r(
            Method::GET,
            "/v1/docs",
            Access::Public,
            "A page listing the routes of this document.",
            Body::None,
            (200, "html"),
            get(system::docs),
        ),
        r(
            Method::POST,
            "/v1/persons",
            Access::Admin,
            "Create a person.",
            Body::Json("NewPerson"),
            (201, "Person"),
            post(persons::create),
        ),
        Route {
            query: &[
                (
                    "after",
                    "string",
                    "Continue after this person id (the previous page's `next`).",
                ),
                ("limit", "integer", "Page size, 1-1000 (default 100)."),
            ],
            ..r(
                Method::GET,
                "/v1/persons",
                Access::Viewer,
                "List persons, ordered by id.",
                Body::None,
                (200, "PersonPage"),
                get(persons::list),
            )
        },
        r(
            Method::GET,
            "/v1/persons/{id}",
            Access::Viewer,
            "One person, with the ids of their face templates.",
            Body::None,
            (200, "PersonWithFaces"),
            get(persons::get_one),
        ),
        r(
            Method::PATCH,
            "/v1/persons/{id}",
            Access::Admin,
            "Change a person: absent fields stay, null clears an optional field.",
            Body::Json("PersonPatch"),
            (200, "Person"),
            patch(persons::update),
        ),
        r(
            Method::DELETE,
            "/v1/persons/{id}",
            Access::Admin,
            "Delete a person and all their face templates (cache, Milvus, outbox).",
            Body::None,
            (200, "Removed"),
            delete(persons::remove),
        ),
        Route {
            query: &[
                (
                    "face",
                    "integer",
                    "Which face to enroll when a photo shows several (0 = largest).",
                ),
                (
                    "allow_duplicate",
                    "boolean",
                    "Enroll even when the face already matches another person.",
                ),
            ],
            ..r(
                Method::POST,
                "/v1/persons/{id}/faces",
                Access::Admin,
                "Enroll one or more photos of a person (raw image body, or multipart file parts). 422 with a reason code for an unusable photo, 409 when the face matches another person.",
                Body::Images,
                (201, "Enrollment"),
                post(faces::enroll),
            )
        },
        r(
            Method::DELETE,
            "/v1/faces/{id}",
            Access::Admin,
            "Delete one face template.",
            Body::None,
            (200, "Removed"),
            delete(faces::remove),
        ),
        Route {
            rate_limited: true,
            query: &[
                (
                    "person",
                    "string",
                    "The claimed person's id (or a multipart field `person`).",
                ),
                (
                    "face",
                    "integer",
                    "Which face of the photo to check (0 = largest, the default).",
                ),
            ],
            ..r(
                Method::POST,
                "/v1/verify",
                Access::Viewer,
                "1:1: is this the claimed person? Score, threshold, decision.",
                Body::Images,
                (200, "Verification"),
                post(recognize::verify),
            )
        },
        Route {
            rate_limited: true,
            ..r(
                Method::POST,
                "/v1/identify",
                Access::Viewer,
                "1:N: who is this? Top candidates and the decision, per face in the photo.",
                Body::Images,
                (200, "Identification"),
                post(recognize::identify),
            )
        },
        Route {
            query: &[
                (
                    "from_ms",
                    "integer",
                    "Only events at or after this time (Unix ms).",
                ),
                (
                    "until_ms",
                    "integer",
                    "Only events before this time (Unix ms).",
                ),
                ("person", "string", "Only events about this person."),
                (
                    "outcome",
                    "string",
                    "granted, denied, unknown, no_face, enrolled, rejected, deleted or unlocked.",
                ),
                (
                    "action",
                    "string",
                    "verify, identify, enroll, delete_person, delete_face, unlock or access.",
                ),
                ("source", "string", "api, door or cli."),
                ("cursor", "string", "Continue a previous page (its `next`)."),
                ("limit", "integer", "Page size, 1-1000 (default 100)."),
            ],
            ..r(
                Method::GET,
                "/v1/events",
                Access::Viewer,
                "The audit log, newest first.",
                Body::None,
                (200, "EventPage"),
                get(events::list),
            )
        },
        r(
            Method::GET,
            "/v1/events/{id}/face",
            Access::Admin,
            "The aligned face crop (112x112 JPEG) stored with a door decision (access.save_face_crops); 404 when there is none.",
            Body::None,
            (200, "jpeg"),
            get(events::face),
        ),
        Route {
            door: true,
            ..r(
                Method::GET,
                "/v1/door",
                Access::Viewer,
                "The door's state (404 on a facegate without a door).",
                Body::None,
                (200, "DoorStatus"),
                get(d::status),
            )
        },
        Route {
            door: true,
            ..r(
                Method::POST,
                "/v1/door/unlock",
                Access::Admin,
                "Unlock the door remotely (404 on a facegate without a door).",
                Body::Json("Unlock"),
                (200, "DoorStatus"),
                post(d::unlock),
            )
        },
    ]
}

/// The router: every route of [`routes`] with its auth and rate-limit layers, JSON 404/405, and
/// the body size limit; and the web console at /console when one is attached.
pub fn router(api: AppState) -> Router {
    let routes = api_router(Arc::clone(&api));
    match &api.console {
        Some(console) => routes.clone().merge(crate::console::router(
            Arc::clone(console),
            Arc::clone(&api),
            routes,
        )),
        None => routes,
    }
}

fn api_router(api: AppState) -> Router {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    let has_door = api.door.is_some();
    for route in routes() {
        let handler = if route.door && !has_door {
            let filter = MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET);
            on(filter, routes::door::no_door)
        } else {
            route.handler
        };
        let mut handler = handler;
        if route.rate_limited {
            handler =
                handler.route_layer(middleware::from_fn_with_state(Arc::clone(&api), rate_limit));
        }
        if route.method != Method::GET {
            handler = handler.route_layer(middleware::from_fn_with_state(
                Arc::clone(&api),
                require_space,
            ));
        }
        let access = route.access;
        if access != Access::Public {
            handler = handler.route_layer(middleware::from_fn_with_state(
                Arc::clone(&api),
                move |state: State<AppState>, req: Request, next: Next| {
                    authorize(access, state, req, next)
                },
            ));
        }
        match by_path.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, existing)) => {
                let merged = std::mem::take(existing).merge(handler);
                *existing = merged;
            }
            None => by_path.push((route.path, handler)),
        }
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(api.max_body_bytes))
        .layer(middleware::from_fn(log_request))
        .with_state(api)
}

async fn authorize(
    access: Access,
    State(api): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    // The web console's own calls carry their session's access instead of a token.
    if let Some(auth::InProcess(have)) = req.extensions().get::<auth::InProcess>().copied() {
        return if have >= access {
            next.run(req).await
        } else {
            ApiError::forbidden(format!(
                "this needs the {} token; the viewer may only read",
                access.as_str()
            ))
            .into_response()
        };
    }
    match api.tokens.require(access, req.headers()) {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Refuse a writing request with 507 when the disk is (nearly) full: nothing is half-written,
/// and reads keep working.
async fn require_space(State(api): State<AppState>, req: Request, next: Next) -> Response {
    match api.space.check() {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn rate_limit(State(api): State<AppState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<ClientAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip());
    match api.rate.check(ip) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            api.metrics.rate_limited();
            e.into_response()
        }
    }
}

async fn log_request(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        path,
        status = response.status().as_u16(),
        ms = start.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {method} {}; the routes are listed at /v1/openapi.json",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; see /v1/openapi.json",
            uri.path()
        ),
    )
}

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
