//! The console acts through the HTTP API's own routes, called in-process: the same handlers,
//! with the same validation, free-space guard, audit events and metrics as a JSON client gets.
//! Nothing the console does goes around them.
//!
//! The request carries the session's access level as an [`InProcess`] extension (which only
//! code in this process can attach) instead of a bearer token: the console never keeps a token.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde::Serialize;
use serde_json::Value;
use tower_service::Service as _;

use crate::api::Access;
use crate::api::auth::InProcess;

/// What an API route answered.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The API's explanation of a failure ("detail"), else the status.
    pub fn detail(&self) -> String {
        match self.json().get("detail").and_then(Value::as_str) {
            Some(d) => d.to_owned(),
            None => format!("the API answered {}", self.status),
        }
    }
}

/// The API's router, callable from the console's handlers.
#[derive(Clone)]
pub struct ApiClient {
    router: Router,
}

/// Largest answer the console reads from an API route (a page of 1,000 persons fits).
const MAX_ANSWER: usize = 64 << 20;

impl ApiClient {
    pub fn new(router: Router) -> ApiClient {
        ApiClient { router }
    }

    /// Call `method path` with `body` (and its content type) as `access`.
    pub async fn call(
        &self,
        access: Access,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let mut req = match builder.body(Body::from(body)) {
            Ok(r) => r,
            Err(e) => {
                return Answer {
                    status: StatusCode::BAD_REQUEST,
                    body: serde_json::to_vec(&serde_json::json!({"detail": e.to_string()}))
                        .unwrap_or_default(),
                };
            }
        };
        req.extensions_mut().insert(InProcess(access));
        let mut router = self.router.clone();
        let response = match router.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let body = match axum::body::to_bytes(response.into_body(), MAX_ANSWER).await {
            Ok(b) => b.to_vec(),
            Err(e) => {
                tracing::warn!(error = %e, "console: API answer not read");
                Vec::new()
            }
        };
        Answer { status, body }
    }

    pub async fn get(&self, access: Access, path: &str) -> Answer {
        self.call(access, Method::GET, path, None, Vec::new()).await
    }

    pub async fn send_json(
        &self,
        access: Access,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Answer {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        self.call(access, method, path, Some("application/json"), bytes)
            .await
    }
}

/// Percent-encode one path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `multipart/form-data` body of image files, for the enrollment route.
pub fn multipart(
    files: &[(String, Vec<u8>)],
) -> Result<(String, Vec<u8>), super::session::RandomError> {
    let mut r = [0u8; 16];
    getrandom::fill(&mut r).map_err(|e| super::session::RandomError(e.to_string()))?;
    let boundary: String = r.iter().map(|x| format!("{x:02x}")).collect();
    let boundary = format!("facegate-console-{boundary}");
    let mut body = Vec::new();
    for (name, bytes) in files {
        // File names are echoed back in the results; keep them printable and quote-free.
        let safe: String = name
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .take(120)
            .collect();
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{safe}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((format!("multipart/form-data; boundary={boundary}"), body))
}
