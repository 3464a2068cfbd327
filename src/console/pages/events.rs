//! Events: the audit log with filters, newest first, live (the rows are re-read every few
//! seconds by the page's script), and the face crop of a door decision when one is stored.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::api_failure;
use crate::access::Outcome;
use crate::access::when::{local_zone, parse_when};
use crate::console::dispatch::enc;
use crate::console::session::Session;
use crate::console::{Ctx, PageResult};

/// Events on one page.
const PAGE: usize = 50;
/// How often the page re-reads its rows.
pub const POLL_S: u32 = 5;

pub const ACTIONS: [&str; 7] = [
    "access",
    "enroll",
    "unlock",
    "identify",
    "verify",
    "delete_person",
    "delete_face",
];

/// The filters as the form sends them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Filters {
    pub person: String,
    pub action: String,
    pub outcome: String,
    pub source: String,
    /// A time as `facegate events --since` reads it (`2h`, `today`, a local date…).
    pub since: String,
    pub cursor: String,
}

impl Filters {
    /// The API query, or why a filter is not understood.
    fn api_query(&self) -> Result<String, String> {
        let mut q = vec![format!("limit={PAGE}")];
        let mut add = |k: &str, v: &str| {
            let v = v.trim();
            if !v.is_empty() {
                q.push(format!("{k}={}", enc(v)));
            }
        };
        add("person", &self.person);
        add("action", &self.action);
        add("outcome", &self.outcome);
        add("source", &self.source);
        add("cursor", &self.cursor);
        if !self.since.trim().is_empty() {
            let ms = parse_when(&self.since, crate::gallery::now_ms(), &local_zone())
                .map_err(|e| format!("since: {e}"))?;
            q.push(format!("from_ms={ms}"));
        }
        Ok(format!("/v1/events?{}", q.join("&")))
    }

    /// This page's own query string, without the cursor (for the live rows and older pages).
    fn query(&self, cursor: Option<&str>) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("person", &self.person),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("source", &self.source),
            ("since", &self.since),
        ] {
            if !v.trim().is_empty() {
                q.push(format!("{k}={}", enc(v.trim())));
            }
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", enc(c)));
        }
        q.join("&")
    }
}

/// One page of events from the API.
async fn read(
    ctx: &Ctx,
    me: &Session,
    f: &Filters,
) -> Result<(Vec<Value>, Option<String>), Response> {
    let path = f
        .api_query()
        .map_err(|why| ctx.error(StatusCode::BAD_REQUEST, Some(me), &why))?;
    let answer = ctx.api.get(me.access, &path).await;
    if !answer.ok() {
        return Err(api_failure(ctx, me, &answer));
    }
    let v = answer.json();
    let events = v["events"].as_array().cloned().unwrap_or_default();
    let next = v["next"].as_str().map(str::to_owned);
    Ok((events, next))
}

pub async fn page(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Query(f): Query<Filters>,
) -> PageResult {
    let (events, next) = read(&ctx, &me, &f).await?;
    Ok(ctx.page(
        "events.html",
        Some(&me),
        json!({
            "nav": "events",
            "events": events,
            "f": f,
            "actions": ACTIONS,
            "outcomes": Outcome::ALL.map(Outcome::as_str),
            "poll_s": POLL_S,
            "rows_url": format!("/console/events/rows?{}", f.query(None)),
            "next": next.map(|c| format!("/console/events?{}", f.query(Some(&c)))),
        }),
    ))
}

/// The table rows alone, for the live update.
pub async fn rows(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Query(f): Query<Filters>,
) -> PageResult {
    let (events, _) = read(&ctx, &me, &f).await?;
    Ok(ctx.page("event_rows.html", Some(&me), json!({"events": events})))
}

/// The face crop of a door decision (admin only, as at the API: it is biometric data).
pub async fn face(
    State(ctx): State<Ctx>,
    Extension(me): Extension<Session>,
    Path(id): Path<u64>,
) -> Response {
    let answer = ctx
        .api
        .get(me.access, &format!("/v1/events/{id}/face"))
        .await;
    if !answer.ok() {
        return (answer.status, answer.detail()).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        answer.body,
    )
        .into_response()
}
