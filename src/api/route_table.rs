//! The one table of the API's routes: method, path, access, rate limit, OpenAPI summary,
//! body and success schema, and the handler.

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};

use super::{Access, AppState};

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
    use super::routes::{door as d, events, faces, persons, recognize, system};
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
