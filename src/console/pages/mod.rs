//! The console's pages, one module per section.

pub mod camera;
pub mod door;
pub mod events;
pub mod persons;
pub mod status;

use axum::http::StatusCode;
use axum::response::Response;

use super::Ctx;
use super::dispatch::Answer;
use super::session::Session;

/// The fixed notice for `?done=…` after a change (a redirect after POST).
pub fn notice(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "created" => "Person created. Enroll a photo of their face below.",
        "saved" => "Rules saved.",
        "deleted" => "Person deleted, with their face templates.",
        "unlocked" => "Door unlocked (and recorded in the audit log).",
        _ => return None,
    })
}

/// An API failure as a console page with the API's own explanation.
pub fn api_failure(ctx: &Ctx, me: &Session, answer: &Answer) -> Response {
    let status = StatusCode::from_u16(answer.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    ctx.error(status, Some(me), &answer.detail())
}
