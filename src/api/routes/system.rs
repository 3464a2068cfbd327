//! Health, readiness, metrics, the OpenAPI document and its page.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::AppState;
use crate::gallery::RemoteState;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(api): State<AppState>) -> Response {
    let models = api.inference.models();
    let models = json!({
        "detector": models.detector.name,
        "embedder": models.embedder.name,
        "dim": models.dim(),
    });
    match api.gallery.stats().await {
        Ok(s) => {
            let degraded = matches!(s.remote, RemoteState::Offline { .. });
            let body = json!({
                "status": if degraded { "degraded" } else { "ready" },
                "models": models,
                "gallery": {"open": true, "persons": s.persons, "templates": s.templates, "outbox_depth": s.outbox_depth},
                "milvus": s.remote,
                "last_sync_ms": s.last_sync_ms,
                "recognition": api.operating.state(),
            });
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => {
            let body = json!({
                "status": "not_ready",
                "error": "gallery_unavailable",
                "detail": e.to_string(),
                "models": models,
                "gallery": {"open": false},
            });
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
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub async fn openapi() -> Json<Value> {
    Json(crate::api::openapi::document())
}

pub async fn docs() -> Html<&'static str> {
    Html(crate::api::openapi::DOCS_HTML)
}
