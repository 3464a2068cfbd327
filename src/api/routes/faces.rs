//! `POST /v1/persons/{id}/faces` (enrollment) and `DELETE /v1/faces/{id}`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::audit::FaceQuality;
use crate::access::{Action, EventSource, NewEvent, Outcome};
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiPath, ApiQuery, Upload};
use crate::api::metrics::Stage;
use crate::api::routes::recognize::{admit, gallery_error};
use crate::gallery::enroll::{EnrollError, MIN_ENROLL_SHARPNESS, enrollment_face};
use crate::vision::{Quality, frame};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollQuery {
    face: Option<usize>,
    #[serde(default)]
    allow_duplicate: bool,
}

/// What became of one photo.
struct PhotoResult {
    filename: Option<String>,
    quality: Option<Quality>,
    outcome: Result<Vec<f32>, ApiError>,
}

pub async fn enroll(
    State(api): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EnrollQuery>,
    upload: Upload,
) -> ApiResult<Response> {
    if api
        .gallery
        .person(&id)
        .await
        .map_err(|e| gallery_error(&api, e))?
        .is_none()
    {
        return Err(ApiError::not_found(format!(
            "no person with id {id:?}: create it first with POST /v1/persons"
        )));
    }
    let admission = admit(&api)?;
    let (max_pixels, index) = (api.max_image_pixels, q.face);
    let images = upload.images;
    let api2 = AppState::clone(&api);
    let mut photos = api
        .inference
        .run(admission, move |pipeline| {
            images
                .into_iter()
                .map(|image| {
                    let t0 = Instant::now();
                    let decoded = frame::decode_image(&image.bytes, max_pixels);
                    api2.metrics.stage(Stage::Decode, t0.elapsed());
                    let img = match decoded {
                        Ok(img) => img,
                        Err(e) => {
                            return PhotoResult {
                                filename: image.filename,
                                quality: None,
                                outcome: Err(e.into()),
                            };
                        }
                    };
                    let t1 = Instant::now();
                    let found = enrollment_face(pipeline, &img, index, MIN_ENROLL_SHARPNESS);
                    api2.metrics.stage(Stage::DetectEmbed, t1.elapsed());
                    let (quality, outcome) = match found {
                        Ok((face, e)) => (Some(face.quality), Ok(e)),
                        Err(EnrollError::Rejected(r)) => (None, Err(ApiError::rejected(&r))),
                        Err(EnrollError::Vision(e)) => (None, Err(e.into())),
                    };
                    PhotoResult {
                        filename: image.filename,
                        quality,
                        outcome,
                    }
                })
                .collect::<Vec<_>>()
        })
        .await?;

    // Refuse faces that already match someone else, unless the admin says otherwise.
    if !q.allow_duplicate {
        for photo in &mut photos {
            let Ok(e) = &photo.outcome else { continue };
            let t = Instant::now();
            let found = api.gallery.identify(e, 2).await;
            api.metrics.stage(Stage::Gallery, t.elapsed());
            let found = found.map_err(|e| gallery_error(&api, e))?;
            if let Some(other) = found
                .candidates
                .iter()
                .find(|m| m.person != id && m.score >= api.threshold)
            {
                photo.outcome = Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "duplicate",
                    format!(
                        "the face already matches person {} (score {:.3}, threshold {:.3}); \
                         add ?allow_duplicate=true to enroll it anyway",
                        other.person, other.score, api.threshold
                    ),
                )
                .with("reason", "duplicate")
                .with("person", other.person.clone())
                .with("score", other.score));
            }
        }
    }

    let embeddings: Vec<Vec<f32>> = photos
        .iter()
        .filter_map(|p| p.outcome.as_ref().ok().cloned())
        .collect();
    let written = if embeddings.is_empty() {
        None
    } else {
        let t = Instant::now();
        let w = api.gallery.add_templates(&id, embeddings).await;
        api.metrics.stage(Stage::Gallery, t.elapsed());
        Some(w.map_err(|e| gallery_error(&api, e))?)
    };
    let mut templates = written
        .as_ref()
        .map(|w| w.templates.clone())
        .unwrap_or_default()
        .into_iter();

    let mut results = Vec::new();
    let mut failures: Vec<ApiError> = Vec::new();
    for (i, photo) in photos.into_iter().enumerate() {
        let quality_json = photo.quality.map(|q| json!(q));
        match photo.outcome {
            Ok(_) => {
                let template = templates.next();
                let mut event =
                    NewEvent::new(Action::Enroll, Outcome::Enrolled, EventSource::Api).person(&id);
                if let Some(t) = template {
                    event = event.template(t);
                }
                if let Some(q) = &photo.quality {
                    event = event.quality(FaceQuality::from(q));
                }
                api.audit.append(event)?;
                results.push(json!({
                    "index": i,
                    "filename": photo.filename,
                    "status": "enrolled",
                    "template": template,
                    "quality": quality_json,
                }));
            }
            Err(e) => {
                api.audit.append(
                    NewEvent::new(Action::Enroll, Outcome::Rejected, EventSource::Api)
                        .person(&id)
                        .reason(e.detail.clone()),
                )?;
                let mut r = e.body();
                if let Value::Object(m) = &mut r {
                    m.insert("index".into(), json!(i));
                    m.insert("filename".into(), json!(photo.filename));
                    m.insert("status".into(), json!("rejected"));
                    m.insert("http_status".into(), json!(e.status.as_u16()));
                }
                results.push(r);
                failures.push(e);
            }
        }
    }
    // Acknowledged means durable: the audit events reach the disk before the response, as
    // the templates did (a `kill -9` right after a 201 must not lose them).
    api.audit.flush()?;
    let enrolled = results.len() - failures.len();
    api.metrics.enrolled(enrolled);
    tracing::info!(person = %id, enrolled, rejected = failures.len(), "enrollment");

    if enrolled == 0 {
        // One photo: its own error. Several: the common status, else 422, with every result.
        let first = failures.swap_remove(0);
        if results.len() == 1 {
            return Err(first);
        }
        let status = if failures.iter().all(|f| f.status == first.status) {
            first.status
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        return Err(ApiError::new(
            status,
            "not_enrolled",
            format!(
                "none of the {} photos was enrolled; see results",
                results.len()
            ),
        )
        .with("results", Value::Array(results)));
    }
    let body = json!({
        "person": id,
        "enrolled": enrolled,
        "rejected": results.len() - enrolled,
        "templates": written.as_ref().map(|w| w.templates.clone()),
        "remote_confirmed": written.as_ref().map(|w| w.remote_confirmed),
        "results": results,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn remove(
    State(api): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<Json<Value>> {
    let removed = api
        .gallery
        .delete_template(id)
        .await
        .map_err(|e| gallery_error(&api, e))?;
    tracing::info!(template = id, removed = removed.templates, "face deleted");
    api.audit.append(
        NewEvent::new(Action::DeleteFace, Outcome::Deleted, EventSource::Api)
            .template(id)
            .reason(format!("{} face template(s) removed", removed.templates)),
    )?;
    api.audit.flush()?;
    let note = (removed.templates == 0)
        .then_some("not in the local gallery: the deletion is queued for the central gallery");
    Ok(Json(json!({"face": id, "removed": removed, "note": note})))
}
