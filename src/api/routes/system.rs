//! Health, readiness, metrics, the OpenAPI document and its page.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::api::AppState;
use crate::api::responses::{
    ClockState, DiskState, GalleryState, Health, HostState, ModelsInfo, NotReady, Ready,
};
use crate::gallery::RemoteState;

pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// What `facegate doctor` checks of the machine that a running server can report cheaply: the
/// free space of the gallery's disk and whether the clock is set (no path: `/readyz` needs no
/// token).
fn host_state(api: &crate::api::Api) -> HostState {
    let now = crate::gallery::now_ms();
    let (y, m, d) = crate::access::rules::utc_date(now);
    let clock = ClockState {
        utc_date: format!("{y:04}-{m:02}-{d:02}"),
        set: crate::access::rules::check_clock(now).is_ok(),
    };
    let disk = api
        .space
        .paths()
        .first()
        .and_then(|p| crate::host::nearest_existing(p))
        .map(|dir| match crate::host::disk_space(&dir) {
            Ok((free, total)) => DiskState {
                free_bytes: Some(free),
                total_bytes: Some(total),
                state: match crate::host::judge_free_space(free) {
                    Ok(()) => "ok",
                    Err(false) => "low",
                    Err(true) => "full",
                },
            },
            Err(_) => DiskState {
                free_bytes: None,
                total_bytes: None,
                state: "unknown",
            },
        });
    HostState { clock, disk }
}

pub async fn readyz(State(api): State<AppState>) -> Response {
    let models = api.inference.models();
    let models = ModelsInfo {
        detector: models.detector.name.clone(),
        embedder: models.embedder.name.clone(),
        dim: models.dim(),
    };
    match api.gallery.stats().await {
        Ok(s) => {
            let degraded = matches!(s.remote, RemoteState::Offline { .. });
            let body = Ready {
                status: if degraded { "degraded" } else { "ready" },
                models,
                gallery: GalleryState {
                    open: true,
                    persons: Some(s.persons),
                    templates: Some(s.templates),
                    outbox_depth: Some(s.outbox_depth),
                },
                milvus: s.remote,
                last_sync_ms: s.last_sync_ms,
                recognition: api.operating.state(),
                host: host_state(&api),
            };
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => {
            let body = NotReady {
                status: "not_ready",
                error: "gallery_unavailable",
                detail: e.to_string(),
                models,
                gallery: GalleryState {
                    open: false,
                    persons: None,
                    templates: None,
                    outbox_depth: None,
                },
                host: host_state(&api),
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

pub async fn metrics(State(api): State<AppState>) -> Response {
    let stats = api.gallery.stats().await.ok();
    let text = api.metrics.render(
        stats.as_ref(),
        api.inference.in_flight(),
        api.inference.slots(),
    );
    (
        [(header::CONTENT_TYPE, crate::api::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

pub async fn openapi() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(crate::api::openapi::document())
}

pub async fn docs() -> Html<&'static str> {
    Html(crate::api::openapi::DOCS_HTML)
}
