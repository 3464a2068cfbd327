//! Every error the API answers: a real HTTP status and a JSON body `{error, detail, ...}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::access::audit::AuditError;
use crate::gallery::GalleryError;
use crate::gallery::enroll::EnrollRejection;
use crate::vision::VisionError;

/// The JSON body of every error: `{error, detail}` and, for some errors, further fields.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A short machine-readable code ("not_found", "face_rejected", "duplicate", ...).
    pub error: &'static str,
    /// What happened and what to do.
    pub detail: String,
    /// Further fields of some errors: `reason` (a code: no_face, too_small, duplicate, ...)
    /// with the figures behind it, `person` and `score` of a duplicate face, `results` of a
    /// refused enrollment of several photos.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// An error response. `error` is a short machine-readable code, `detail` says what happened
/// and what to do; `extra` fields are merged into the body.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub detail: String,
    pub extra: Map<String, Value>,
    pub retry_after_s: Option<u64>,
    pub www_authenticate: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            detail: detail.into(),
            extra: Map::new(),
            retry_after_s: None,
            www_authenticate: false,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail);
        e.www_authenticate = true;
        e
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// An enrollment or probe photo without a usable face: 422 with the reason code.
    pub fn rejected(r: &EnrollRejection) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "face_rejected",
            r.to_string(),
        );
        if let Ok(Value::Object(fields)) = serde_json::to_value(r) {
            e.extra = fields;
        }
        e
    }

    pub fn body(&self) -> ErrorBody {
        let mut extra = self.extra.clone();
        extra.remove("error");
        // A further field `detail` (an `unusable` face's) says it more precisely: it wins.
        let detail = match extra.remove("detail") {
            Some(Value::String(d)) => d,
            _ => self.detail.clone(),
        };
        ErrorBody {
            error: self.error,
            detail,
            extra,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.error,
            self.detail
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), error = self.error, detail = %self.detail, "request failed");
        }
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.www_authenticate {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"facegate\""),
            );
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of an oversized body is never read: close the connection, so a client
            // does not send its next request on a connection the server is dropping.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

impl From<GalleryError> for ApiError {
    fn from(e: GalleryError) -> Self {
        let text = e.to_string();
        match e {
            GalleryError::UnknownPerson(_) | GalleryError::UnknownTemplate(_) => {
                ApiError::not_found(text)
            }
            GalleryError::PersonExists(_) => ApiError::new(StatusCode::CONFLICT, "conflict", text),
            GalleryError::Invalid(_) | GalleryError::Dimension { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", text)
            }
            GalleryError::Remote(_) | GalleryError::RemoteUnavailable(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "central_gallery", text)
            }
            GalleryError::Storage {
                source: sled::Error::Io(io),
                ..
            } if crate::app::space::is_no_space(&io) => no_space(format!(
                "the gallery cannot be written: {io}; free some space"
            )),
            GalleryError::Storage { .. }
            | GalleryError::InUse { .. }
            | GalleryError::ModelMismatch { .. }
            | GalleryError::Corrupt(_)
            | GalleryError::Crypto(_) => ApiError::internal(text),
        }
    }
}

impl From<VisionError> for ApiError {
    fn from(e: VisionError) -> Self {
        let text = e.to_string();
        match e {
            VisionError::ImageTooLarge { .. } | VisionError::DecodedTooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "image_too_large", text)
            }
            VisionError::Image { .. } => ApiError::new(StatusCode::BAD_REQUEST, "bad_image", text),
            _ => ApiError::internal(text),
        }
    }
}

impl From<AuditError> for ApiError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::Invalid(m) => ApiError::bad_request(m),
            AuditError::Storage {
                source: sled::Error::Io(io),
                ..
            } if crate::app::space::is_no_space(&io) => no_space(format!(
                "the audit log cannot be written: {io}; free some space"
            )),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<crate::app::space::SpaceError> for ApiError {
    fn from(e: crate::app::space::SpaceError) -> Self {
        match e {
            full @ crate::app::space::SpaceError::Full { .. } => no_space(full.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// 507 Insufficient Storage: the disk is full; retry once space is freed.
fn no_space(detail: String) -> ApiError {
    ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", detail).retry_after(60)
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::app::sink::SinkError> for ApiError {
    fn from(e: crate::app::sink::SinkError) -> Self {
        match e {
            crate::app::sink::SinkError::Audit(e) => e.into(),
            crate::app::sink::SinkError::Space(e) => e.into(),
        }
    }
}

impl From<crate::app::usecases::UseCaseError> for ApiError {
    fn from(e: crate::app::usecases::UseCaseError) -> Self {
        use crate::app::usecases::UseCaseError;
        match e {
            UseCaseError::NoPerson(_) => ApiError::not_found(e.to_string()),
            UseCaseError::Gallery(e) => e.into(),
            UseCaseError::Record(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_names_each_field_once_and_a_further_detail_wins() {
        let e = ApiError::rejected(&EnrollRejection::Unusable {
            detail: "degenerate landmarks".into(),
        });
        let text = serde_json::to_string(&e.body()).unwrap();
        assert_eq!(text.matches("\"detail\"").count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["detail"], "degenerate landmarks");
        assert_eq!(v["reason"], "unusable");
        assert_eq!(v["error"], "face_rejected");
        let e = ApiError::bad_request("limit = 0").with("error", "other");
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "bad_request", "detail": "limit = 0"})
        );
    }
}
