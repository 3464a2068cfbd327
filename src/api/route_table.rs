//! The one table of the API's routes: method, path, access, rate limit, OpenAPI summary,
//! request and response body types, and the handler.

use std::borrow::Cow;

use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};

use super::responses::{
    Enrollment, FaceRemoved, Health, Identification, NotReady, PersonPage, PersonRemoved,
    PersonWithFaces, Ready, Verification,
};
use super::routes::door::Unlock;
use super::{Access, AppState, DoorStatus};
use crate::access::EventPage;
use crate::gallery::{NewPerson, Person, PersonPatch};

/// A JSON body's type as the OpenAPI document needs it: the name of its schema, the schema,
/// and the schemas it refers to, all from the type's `utoipa::ToSchema` derive.
#[derive(Clone, Copy)]
pub struct JsonType {
    pub name: fn() -> Cow<'static, str>,
    pub schema: fn() -> RefOr<Schema>,
    pub schemas: fn(&mut Vec<(String, RefOr<Schema>)>),
}

impl JsonType {
    pub fn of<T: ToSchema>() -> JsonType {
        JsonType {
            name: T::name,
            schema: T::schema,
            schemas: T::schemas,
        }
    }
}

impl std::fmt::Debug for JsonType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JsonType({})", (self.name)())
    }
}

impl PartialEq for JsonType {
    fn eq(&self, other: &JsonType) -> bool {
        (self.name)() == (other.name)()
    }
}

impl Eq for JsonType {}

/// What a route's request body is, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    /// A JSON object of this type.
    Json(JsonType),
    /// Image(s): a raw `image/jpeg` / `image/png` body or multipart file parts.
    Images,
}

/// What a response's body is, for the OpenAPI document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A JSON object of this type.
    Json(JsonType),
    /// `text/plain`.
    Text,
    /// `text/html`.
    Html,
    /// `image/jpeg`.
    Jpeg,
    /// The OpenAPI document itself (a JSON object).
    Document,
}

impl Reply {
    pub fn json<T: ToSchema>() -> Reply {
        Reply::Json(JsonType::of::<T>())
    }
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
    /// Success status and its body.
    pub ok: (u16, Reply),
    /// Other answers that are not errors of the common kinds ([`super::openapi`] adds those):
    /// status, description, body.
    pub also: Vec<(u16, &'static str, Reply)>,
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
             ok: (u16, Reply),
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
        also: Vec::new(),
        handler,
    };
    vec![
        r(
            Method::GET,
            "/healthz",
            Access::Public,
            "The process is alive.",
            Body::None,
            (200, Reply::json::<Health>()),
            get(system::healthz),
        ),
        Route {
            also: vec![(
                503,
                "The gallery does not answer.",
                Reply::json::<NotReady>(),
            )],
            ..r(
                Method::GET,
                "/readyz",
                Access::Public,
                "Models loaded, gallery open, central gallery (Milvus) state; 503 when the gallery does not answer.",
                Body::None,
                (200, Reply::json::<Ready>()),
                get(system::readyz),
            )
        },
        r(
            Method::GET,
            "/metrics",
            Access::Viewer,
            "Prometheus metrics (text exposition format).",
            Body::None,
            (200, Reply::Text),
            get(system::metrics),
        ),
        r(
            Method::GET,
            "/v1/openapi.json",
            Access::Public,
            "This document.",
            Body::None,
            (200, Reply::Document),
            get(system::openapi),
        ),
        r(
            Method::GET,
            "/v1/docs",
            Access::Public,
            "A page listing the routes of this document.",
            Body::None,
            (200, Reply::Html),
            get(system::docs),
        ),
        r(
            Method::POST,
            "/v1/persons",
            Access::Admin,
            "Create a person.",
            Body::Json(JsonType::of::<NewPerson>()),
            (201, Reply::json::<Person>()),
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
                (200, Reply::json::<PersonPage>()),
                get(persons::list),
            )
        },
        r(
            Method::GET,
            "/v1/persons/{id}",
            Access::Viewer,
            "One person, with the ids of their face templates.",
            Body::None,
            (200, Reply::json::<PersonWithFaces>()),
            get(persons::get_one),
        ),
        r(
            Method::PATCH,
            "/v1/persons/{id}",
            Access::Admin,
            "Change a person: absent fields stay, null clears an optional field.",
            Body::Json(JsonType::of::<PersonPatch>()),
            (200, Reply::json::<Person>()),
            patch(persons::update),
        ),
        r(
            Method::DELETE,
            "/v1/persons/{id}",
            Access::Admin,
            "Delete a person and all their face templates (cache, Milvus, outbox).",
            Body::None,
            (200, Reply::json::<PersonRemoved>()),
            delete(persons::remove),
        ),
        Route {
            also: vec![(
                200,
                "Every photo is enrolled for this person already; nothing stored.",
                Reply::json::<Enrollment>(),
            )],
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
                (201, Reply::json::<Enrollment>()),
                post(faces::enroll),
            )
        },
        r(
            Method::DELETE,
            "/v1/faces/{id}",
            Access::Admin,
            "Delete one face template.",
            Body::None,
            (200, Reply::json::<FaceRemoved>()),
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
                (200, Reply::json::<Verification>()),
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
                (200, Reply::json::<Identification>()),
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
                (200, Reply::json::<EventPage>()),
                get(events::list),
            )
        },
        r(
            Method::GET,
            "/v1/events/{id}/face",
            Access::Admin,
            "The aligned face crop (112x112 JPEG) stored with a door decision (access.save_face_crops); 404 when there is none.",
            Body::None,
            (200, Reply::Jpeg),
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
                (200, Reply::json::<DoorStatus>()),
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
                Body::Json(JsonType::of::<Unlock>()),
                (200, Reply::json::<DoorStatus>()),
                post(d::unlock),
            )
        },
    ]
}
