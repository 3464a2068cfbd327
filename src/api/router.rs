//! The axum router made from the route table, and its middleware: authorization, the
//! disk-space guard, the per-client rate limit, request logging, JSON 404/405.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};

use super::auth;
use super::error::ApiError;
use super::{Access, AppState, ClientAddr, routes};

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
