//! The door: its state and alarms, the recent door events, and a remote unlock after a
//! confirmation, through the API's unlock route (which writes the audit event).

use axum::extract::{Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::{Extension, Form};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{api_failure, notice};
use crate::console::session::Session;
use crate::console::{Ctx, PageResult};

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DoorQuery {
    done: Option<String>,
}

/// The door's state, or why there is none.
async fn state(ctx: &Ctx, me: &Session) -> Result<Result<Value, String>, axum::response::Response> {
    let answer = ctx.api.get(me.access, "/v1/door").await;
    if answer.ok() {
        return Ok(Ok(answer.json()));
    }
    if answer.status == StatusCode::NOT_FOUND {
        return Ok(Err(answer.detail()));
    }
    Err(api_failure(ctx, me, &answer))
}

pub async fn page(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Query(q): Query<DoorQuery>,
) -> PageResult {
    let door = state(&ctx, &me).await?;
    // The door's own records and the remote unlocks, newest first.
    let mut events: Vec<Value> = Vec::new();
    for path in [
        "/v1/events?source=door&limit=10",
        "/v1/events?action=unlock&limit=10",
    ] {
        let answer = ctx.api.get(me.access, path).await;
        if answer.ok() {
            events.extend(
                answer.json()["events"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse((e["time_ms"].as_i64(), e["id"].as_u64())));
    events.dedup_by_key(|e| e["id"].as_u64());
    events.truncate(15);
    let (door, no_door) = match door {
        Ok(d) => (d, Value::Null),
        Err(why) => (Value::Null, json!(why)),
    };
    Ok(ctx.page(
        "door.html",
        Some(&me),
        json!({"nav": "door", "door": door, "no_door": no_door, "events": events,
               "notice": notice(q.done.as_deref())}),
    ))
}

pub async fn confirm(State(ctx): State<Ctx>, Extension(me): Extension<Session>) -> PageResult {
    if !me.is_admin() {
        return Err(ctx.error(
            StatusCode::FORBIDDEN,
            Some(&me),
            "Signed in with the viewer token: you can look, not change.",
        ));
    }
    if let Err(why) = state(&ctx, &me).await? {
        return Err(ctx.error(StatusCode::NOT_FOUND, Some(&me), &why));
    }
    Ok(ctx.page(
        "confirm.html",
        Some(&me),
        json!({
            "nav": "door",
            "heading": "Unlock the door?",
            "message": "The relay is energised for the door's configured unlock time, and the \
                        unlock is recorded in the audit log.",
            "action": "/console/door/unlock",
            "button": "Unlock now",
            "back": "/console/door",
            "reason_field": true,
        }),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UnlockForm {
    csrf: String,
    reason: String,
}

pub async fn unlock(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Form(form): Form<UnlockForm>,
) -> PageResult {
    ctx.check_csrf(&me, &form.csrf)?;
    let reason = match form.reason.trim() {
        "" => "web console".to_owned(),
        r => format!("web console: {r}"),
    };
    let answer = ctx
        .api
        .send_json(
            me.access,
            Method::POST,
            "/v1/door/unlock",
            &json!({"reason": reason}),
        )
        .await;
    if !answer.ok() {
        return Err(api_failure(&ctx, &me, &answer));
    }
    Ok(Redirect::to("/console/door?done=unlocked").into_response())
}
