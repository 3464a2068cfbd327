//! Request extractors whose failures are JSON [`ApiError`]s, and image uploads (a raw image
//! body or multipart file parts).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

fn code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

fn rejected(status: StatusCode, text: String) -> ApiError {
    let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("{text}: the request body is larger than the server's limit (api.max_body_bytes)")
    } else {
        text
    };
    ApiError::new(status, code(status), text)
}

/// Largest JSON body (a person, a change to one, an unlock): a person's fields are bounded
/// (see `gallery::limits`) far below it, so nothing valid comes near.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

/// A JSON body (`Content-Type: application/json`) of at most [`MAX_JSON_BYTES`]: 413 beyond
/// it (before it is read further), 400 for malformed JSON, 422 for the wrong fields, 415 for
/// another content type.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("a JSON body may have at most {MAX_JSON_BYTES} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_JSON_BYTES as u64) {
            return Err(too_large());
        }
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_JSON_BYTES)
            .await
            .map_err(|e| {
                // http-body-util's LengthLimitError: "length limit exceeded".
                if e.to_string().contains("length limit") {
                    too_large()
                } else {
                    ApiError::bad_request(format!("reading the body: {e}"))
                }
            })?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(rejected(e.status(), e.body_text())),
        }
    }
}

/// Path parameters: 400 when they do not parse.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(e) => Err(rejected(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

/// Query parameters: 400 when they do not parse.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(rejected(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

/// Most images one request may carry.
pub const MAX_IMAGES: usize = 20;
/// Longest text field of a multipart form.
const MAX_FIELD_BYTES: usize = 1024;

/// One uploaded image.
pub struct Image {
    /// The multipart file name, if any (echoed in per-image results).
    pub filename: Option<String>,
    pub bytes: Bytes,
}

/// Images and text fields of a request: either a raw image body (`image/jpeg`, `image/png`,
/// `image/webp`, `image/bmp`) or `multipart/form-data` with file parts.
pub struct Upload {
    pub images: Vec<Image>,
    pub fields: HashMap<String, String>,
}

const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/webp", "image/bmp"];

fn how() -> &'static str {
    "send the photo as the request body with Content-Type image/jpeg or image/png, or as file \
     parts of a multipart/form-data request"
}

impl Upload {
    /// The one image of a verify/identify request.
    pub fn single(mut self) -> Result<Image, ApiError> {
        match self.images.len() {
            1 => Ok(self.images.remove(0)),
            n => Err(ApiError::bad_request(format!(
                "expected exactly one image, got {n}"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if mime == "multipart/form-data" {
            return read_multipart(req, state).await;
        }
        if !IMAGE_TYPES.contains(&mime.as_str()) {
            let got = if mime.is_empty() {
                "no Content-Type".to_owned()
            } else {
                format!("Content-Type {mime}")
            };
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("{got}: {}", how()),
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| rejected(e.status(), e.body_text()))?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(format!("empty body: {}", how())));
        }
        Ok(Upload {
            images: vec![Image {
                filename: None,
                bytes,
            }],
            fields: HashMap::new(),
        })
    }
}

async fn read_multipart<S: Send + Sync>(req: Request, state: &S) -> Result<Upload, ApiError> {
    let mut form = Multipart::from_request(req, state)
        .await
        .map_err(|e| rejected(e.status(), e.body_text()))?;
    let mut upload = Upload {
        images: Vec::new(),
        fields: HashMap::new(),
    };
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(rejected(e.status(), e.body_text())),
        };
        let name = field.name().unwrap_or("").to_owned();
        let filename = field.file_name().map(str::to_owned);
        let is_file = filename.is_some()
            || field
                .content_type()
                .is_some_and(|t| t.starts_with("image/") || t == "application/octet-stream");
        let bytes = field
            .bytes()
            .await
            .map_err(|e| rejected(e.status(), e.body_text()))?;
        if is_file {
            if upload.images.len() == MAX_IMAGES {
                return Err(ApiError::bad_request(format!(
                    "more than {MAX_IMAGES} images in one request"
                )));
            }
            if bytes.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "file part {:?} is empty",
                    filename.as_deref().unwrap_or(&name)
                )));
            }
            upload.images.push(Image { filename, bytes });
        } else {
            if bytes.len() > MAX_FIELD_BYTES {
                return Err(ApiError::bad_request(format!(
                    "form field {name:?} is longer than {MAX_FIELD_BYTES} bytes"
                )));
            }
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| ApiError::bad_request(format!("form field {name:?} is not UTF-8")))?;
            upload.fields.insert(name, text);
        }
    }
    if upload.images.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the form has no file part: {}",
            how()
        )));
    }
    Ok(upload)
}
