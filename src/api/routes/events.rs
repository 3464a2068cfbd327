//! `GET /v1/events`: the audit log; `GET /v1/events/{id}/face`: an event's face crop.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::access::{Action, EventFilter, EventPage, EventSource, Outcome};
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiPath, ApiQuery};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    from_ms: Option<i64>,
    until_ms: Option<i64>,
    person: Option<String>,
    outcome: Option<String>,
    action: Option<Action>,
    source: Option<EventSource>,
    cursor: Option<String>,
    limit: Option<usize>,
}

pub async fn list(
    State(api): State<AppState>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> ApiResult<Json<EventPage>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=crate::access::audit::MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit = {limit}: use 1-{}",
            crate::access::audit::MAX_PAGE
        )));
    }
    let outcome = match q.outcome.as_deref() {
        None => None,
        Some(s) => Some(Outcome::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "outcome {s:?}: use one of {}",
                Outcome::ALL.map(Outcome::as_str).join(", ")
            ))
        })?),
    };
    let filter = EventFilter {
        from_ms: q.from_ms,
        until_ms: q.until_ms,
        person: q.person,
        outcome,
        action: q.action,
        source: q.source,
    };
    let page = api.audit.query(&filter, q.cursor.as_deref(), limit)?;
    Ok(Json(page))
}

/// The face crop (JPEG) stored with a door decision, when `access.save_face_crops` is on.
/// Admin only: it is biometric data.
pub async fn face(State(api): State<AppState>, ApiPath(id): ApiPath<u64>) -> ApiResult<Response> {
    match api.audit.face_crop(id)? {
        Some(jpeg) => {
            tracing::info!(event = id, "face crop read");
            Ok((
                [
                    (header::CONTENT_TYPE, "image/jpeg"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                jpeg,
            )
                .into_response())
        }
        None => Err(ApiError::not_found(format!(
            "no face crop for event {id}: the event does not exist, is not a door decision, \
             was recorded with access.save_face_crops off, or its crop is past the retention"
        ))),
    }
}
