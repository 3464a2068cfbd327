//! The web admin console at `/console`: server-rendered pages for persons and their rules,
//! enrollment from photos, the audit log, the door and the status, for a phone or a desk.
//!
//! - Mounted in the API's own router ([`crate::api::router`]), so served by `facegate serve`
//!   and `facegate run` on the API's address, with its connection limits and body size limit.
//! - Every change goes through the API's routes, called in-process ([`dispatch`]): the same
//!   checks, audit events and metrics as the JSON API.
//! - Sign-in with the admin or viewer token opens a server-side [`session`]; nothing but the
//!   sign-in page and the style sheet/script is served without one (a redirect to
//!   `/console/login`). Every form carries the session's CSRF token, checked on every POST,
//!   besides the cookie's SameSite=Strict and a same-origin check. The viewer's pages show no
//!   change buttons, and a POST of the viewer is refused (403).
//! - Templates and assets are compiled into the binary ([`templates`]); responses carry a
//!   strict Content-Security-Policy (scripts and styles from /console/assets only).

// A page handler answers with a page either way (`Result<Response, Response>`, axum's idiom):
// the error variant is a whole response by design, made once per request.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod dispatch;
pub mod forms;
pub mod pages;
pub mod session;
pub mod templates;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::api::{Access, AppState};
pub use config::ConsoleConfig;
use dispatch::ApiClient;
use session::{Session, Sessions};
use templates::Templates;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Templates(#[from] templates::TemplateError),
}

/// Sign-in attempts a client address may make: a burst of [`SIGN_IN_BURST`], then this many
/// per minute (a token cannot be guessed anyway; this keeps a script from trying).
pub const SIGN_INS_PER_MINUTE: u32 = 10;
pub const SIGN_IN_BURST: u32 = 5;

/// The console's own state: sessions and templates.
pub struct Console {
    sessions: Sessions,
    /// Sign-in attempts per client address ([`SIGN_INS_PER_MINUTE`], [`SIGN_IN_BURST`]).
    sign_ins: crate::api::limits::RateLimiter,
    /// Served over TLS: the cookie gets `Secure`.
    secure: bool,
    templates: Templates,
}

impl Console {
    /// `secure`: the server speaks TLS.
    pub fn new(config: &ConsoleConfig, secure: bool) -> Result<Console, ConsoleError> {
        Ok(Console {
            sessions: Sessions::new(
                Duration::from_secs(config.session_minutes.saturating_mul(60)),
                config.max_sessions,
            ),
            sign_ins: crate::api::limits::RateLimiter::new(SIGN_INS_PER_MINUTE, SIGN_IN_BURST),
            secure,
            templates: Templates::new()?,
        })
    }

    /// Sessions open now.
    pub fn sessions_open(&self) -> usize {
        self.sessions.len()
    }
}

/// What every console handler gets.
#[derive(Clone)]
pub struct Ctx {
    pub console: Arc<Console>,
    pub api: ApiClient,
    pub state: AppState,
}

/// A handler's answer: a page either way.
pub type PageResult = Result<Response, Response>;

impl Ctx {
    /// Render a page for a signed-in session (`me` in the template).
    pub fn page(&self, name: &str, me: Option<&Session>, mut context: Value) -> Response {
        self.page_with(StatusCode::OK, name, me, &mut context)
    }

    pub fn page_with(
        &self,
        status: StatusCode,
        name: &str,
        me: Option<&Session>,
        context: &mut Value,
    ) -> Response {
        if let Value::Object(m) = context {
            m.insert(
                "me".into(),
                match me {
                    Some(s) => json!({"admin": s.is_admin(), "csrf": s.csrf}),
                    None => Value::Null,
                },
            );
        }
        match self.console.templates.render(name, context) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "console: rendering a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        }
    }

    /// An error page.
    pub fn error(&self, status: StatusCode, me: Option<&Session>, message: &str) -> Response {
        let heading = match status {
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::NOT_FOUND => "Not found",
            s if s.is_server_error() => "Something failed",
            _ => "That did not work",
        };
        self.page_with(
            status,
            "error.html",
            me,
            &mut json!({"status": status.as_u16(), "heading": heading, "message": message}),
        )
    }

    /// Refuse a form whose CSRF token is not the session's.
    pub fn check_csrf(&self, me: &Session, presented: &str) -> Result<(), Response> {
        if me.csrf_ok(presented) {
            Ok(())
        } else {
            tracing::warn!("console: a form with a wrong CSRF token was refused");
            Err(self.error(
                StatusCode::FORBIDDEN,
                Some(me),
                "This form is out of date or did not come from this console (CSRF token \
                 mismatch). Reload the page and try again.",
            ))
        }
    }
}

/// The console's routes (all under `/console`), calling the API through `api_router`.
pub fn router(console: Arc<Console>, state: AppState, api_router: Router) -> Router {
    use pages::{camera, door, events, persons, status};
    let ctx = Ctx {
        console,
        api: ApiClient::new(api_router),
        state: Arc::clone(&state),
    };
    let signed_in = Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/logout", axum::routing::post(logout))
        .route("/console/persons", get(persons::list).post(persons::create))
        .route("/console/persons/new", get(persons::new_form))
        .route(
            "/console/persons/{id}",
            get(persons::show).post(persons::update),
        )
        .route(
            "/console/persons/{id}/delete",
            get(persons::confirm_delete).post(persons::delete),
        )
        .route(
            "/console/persons/{id}/enroll",
            axum::routing::post(persons::enroll),
        )
        .route("/console/persons/{id}/camera", get(camera::page))
        .route(
            "/console/persons/{id}/capture",
            axum::routing::post(camera::capture),
        )
        .route("/console/camera/state", get(camera::state))
        .route("/console/camera/frame.jpg", get(camera::frame))
        .route("/console/events", get(events::page))
        .route("/console/events/rows", get(events::rows))
        .route("/console/events/{id}/face", get(events::face))
        .route("/console/door", get(door::page))
        .route(
            "/console/door/unlock",
            get(door::confirm).post(door::unlock),
        )
        .route("/console/status", get(status::page))
        .route_layer(middleware::from_fn_with_state(ctx.clone(), require_session));
    Router::new()
        .route("/console/login", get(login_form).post(login))
        .route("/console/assets/{name}", get(asset))
        .merge(signed_in)
        .layer(middleware::from_fn(headers))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(ctx)
}

async fn home() -> Redirect {
    Redirect::to("/console/persons")
}

/// Is a state-changing request from this console's own origin? A browser sends `Origin` with
/// every POST; when present it must name the host the request was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

/// Every signed-in route: a live session, else the sign-in page; POSTs only from this origin
/// and, but for signing out, only by the admin.
async fn require_session(State(ctx): State<Ctx>, mut req: Request, next: Next) -> Response {
    let me = session::id_from(req.headers()).and_then(|id| ctx.console.sessions.get(&id));
    let Some(me) = me else {
        return Redirect::to("/console/login").into_response();
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if !same_origin(req.headers()) {
            tracing::warn!("console: a cross-origin form post was refused");
            return ctx.error(
                StatusCode::FORBIDDEN,
                Some(&me),
                "This form was sent from another site.",
            );
        }
        if me.access != Access::Admin && req.uri().path() != "/console/logout" {
            return ctx.error(
                StatusCode::FORBIDDEN,
                Some(&me),
                "Signed in with the viewer token: you can look, not change. Sign in with the \
                 admin token to change things.",
            );
        }
    }
    req.extensions_mut().insert(me);
    next.run(req).await
}

/// Security headers on every console response.
async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not "no-referrer": with it a browser sends `Origin: null` on its own form posts.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    r
}

async fn asset(Path(name): Path<String>) -> Response {
    match templates::ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

async fn login_form(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    if session::id_from(&headers).is_some_and(|id| ctx.console.sessions.get(&id).is_some()) {
        return Redirect::to("/console/persons").into_response();
    }
    ctx.page("login.html", None, json!({}))
}

#[derive(serde::Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    client: Option<axum::Extension<axum::extract::ConnectInfo<crate::api::ClientAddr>>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return ctx.error(
            StatusCode::FORBIDDEN,
            None,
            "This form was sent from another site.",
        );
    }
    let ip = client.map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| {
        c.0.0.0.ip()
    });
    if let Err(e) = ctx.console.sign_ins.check(ip) {
        tracing::warn!("console: sign-in attempts over the limit; refused");
        let mut r = ctx.page_with(
            StatusCode::TOO_MANY_REQUESTS,
            "login.html",
            None,
            &mut json!({"error": "Too many sign-in attempts from this address: wait a minute \
                                  and try again."}),
        );
        if let Some(v) = e
            .retry_after_s
            .and_then(|s| HeaderValue::from_str(&s.to_string()).ok())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    // The token is checked exactly as the API checks a bearer token, then forgotten.
    let mut h = HeaderMap::new();
    let level = HeaderValue::from_str(&format!("Bearer {}", form.token.trim()))
        .ok()
        .and_then(|v| {
            h.insert(header::AUTHORIZATION, v);
            ctx.state.tokens.level(&h).ok()
        });
    let access = match level {
        Some(a @ (Access::Admin | Access::Viewer)) => a,
        _ => {
            tracing::warn!("console: a sign-in with a token that is not valid");
            return ctx.page_with(
                StatusCode::UNAUTHORIZED,
                "login.html",
                None,
                &mut json!({"error": "That token is not valid: use the admin or the viewer token."}),
            );
        }
    };
    let (id, _) = match ctx.console.sessions.open(access) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "console: sign-in");
            return ctx.error(StatusCode::INTERNAL_SERVER_ERROR, None, &e.to_string());
        }
    };
    tracing::info!(access = access.as_str(), "console: signed in");
    let cookie = session::set_cookie(&id, ctx.console.sessions.lifetime(), ctx.console.secure);
    let mut r = Redirect::to("/console/persons").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(ctx): State<Ctx>,
    axum::Extension(me): axum::Extension<Session>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CsrfForm>,
) -> PageResult {
    ctx.check_csrf(&me, &form.csrf)?;
    if let Some(id) = session::id_from(&headers) {
        ctx.console.sessions.close(&id);
    }
    tracing::info!("console: signed out");
    let mut r = Redirect::to("/console/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(ctx.console.secure)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}
