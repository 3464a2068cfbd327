//! `GET /v1/door` and `POST /v1/door/unlock`, when a door is attached.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::access::EventSource;
use crate::api::AppState;
use crate::api::door::{DoorControl, DoorError, DoorStatus};
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::ApiJson;
use crate::app::usecases::UnlockError;

/// On a facegate without a door (`facegate serve`).
pub async fn no_door() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_door",
        "this facegate has no door (serve mode)",
    )
}

fn door(api: &AppState) -> ApiResult<&dyn DoorControl> {
    api.door.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_door",
            "this facegate has no door (serve mode)",
        )
    })
}

fn door_error(e: DoorError) -> ApiError {
    match e {
        DoorError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "door_refused", m),
        DoorError::Failed(m) => ApiError::new(StatusCode::BAD_GATEWAY, "door_failed", m),
    }
}

pub async fn status(State(api): State<AppState>) -> ApiResult<Json<DoorStatus>> {
    Ok(Json(door(&api)?.status().await.map_err(door_error)?))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Unlock {
    /// How long; the door's default when absent.
    seconds: Option<u32>,
    /// Why, for the audit log.
    reason: Option<String>,
}

pub async fn unlock(
    State(api): State<AppState>,
    ApiJson(body): ApiJson<Unlock>,
) -> ApiResult<Json<DoorStatus>> {
    let door = door(&api)?;
    let status = api
        .cases
        .unlock(EventSource::Api, door, body.seconds, body.reason.as_deref())
        .await
        .map_err(|e| match e {
            UnlockError::Invalid(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            UnlockError::Door(e) => door_error(e),
            UnlockError::Record(e) => e.into(),
        })?;
    Ok(Json(status))
}
