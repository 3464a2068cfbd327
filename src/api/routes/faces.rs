//! `POST /v1/persons/{id}/faces` (enrollment) and `DELETE /v1/faces/{id}`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::access::EventSource;
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiPath, ApiQuery, Upload};
use crate::api::metrics::Stage;
use crate::api::responses::{Enrollment, FaceRemoved, PhotoResult};
use crate::api::routes::recognize::{admit, case_error};
use crate::app::usecases::UseCaseError;
use crate::app::usecases::enroll::{self, EnrollPhoto, EnrollRequest, PhotoRefusal, Who};
use crate::vision::frame;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollQuery {
    face: Option<usize>,
    #[serde(default)]
    allow_duplicate: bool,
}

/// The API's answer for a photo the enrollment refused.
fn refusal(why: PhotoRefusal) -> ApiError {
    match why {
        PhotoRefusal::Unreadable(e) => e.into(),
        PhotoRefusal::Face(r) => ApiError::rejected(&r),
        PhotoRefusal::Duplicate {
            ref person, score, ..
        } => ApiError::new(
            StatusCode::CONFLICT,
            "duplicate",
            format!("{why}; add ?allow_duplicate=true to enroll it anyway"),
        )
        .with("reason", "duplicate")
        .with("person", person.clone())
        .with("score", score),
        PhotoRefusal::AlreadyEnrolled {
            ref person,
            template,
            score,
        } => ApiError::new(StatusCode::CONFLICT, "already_enrolled", why.to_string())
            .with("reason", "already_enrolled")
            .with("person", person.clone())
            .with("template", template)
            .with("score", score),
    }
}

/// Vision on each photo (on an inference slot), then the enrollment use-case.
pub async fn enroll(
    State(api): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<EnrollQuery>,
    upload: Upload,
) -> ApiResult<Response> {
    // Before any inference: the person must exist.
    api.cases.person(&id).await.map_err(|e| match e {
        UseCaseError::NoPerson(_) => ApiError::not_found(format!(
            "no person with id {id:?}: create it first with POST /v1/persons"
        )),
        e => case_error(&api, e),
    })?;
    let admission = admit(&api)?;
    let (max_pixels, index) = (api.max_image_pixels, q.face);
    let images = upload.images;
    let api2 = AppState::clone(&api);
    let photos = api
        .inference
        .run(admission, move |pipeline| {
            images
                .into_iter()
                .map(|image| {
                    let t0 = Instant::now();
                    let decoded = frame::decode_image(&image.bytes, max_pixels);
                    api2.metrics.stage(Stage::Decode, t0.elapsed());
                    let face = match decoded {
                        Ok(img) => {
                            let t1 = Instant::now();
                            let face = enroll::look(pipeline, &img, index);
                            api2.metrics.stage(Stage::DetectEmbed, t1.elapsed());
                            face
                        }
                        Err(e) => Err(PhotoRefusal::Unreadable(e)),
                    };
                    EnrollPhoto {
                        label: image.filename,
                        face,
                    }
                })
                .collect::<Vec<_>>()
        })
        .await?;

    let t = Instant::now();
    let enrollment = api
        .cases
        .enroll(EnrollRequest {
            source: EventSource::Api,
            who: Who::Existing(id.clone()),
            photos,
            allow_duplicate: q.allow_duplicate,
        })
        .await;
    api.metrics.stage(Stage::Gallery, t.elapsed());
    let enrollment = enrollment.map_err(|e| case_error(&api, e))?;
    let enrolled = enrollment.enrolled();
    let already = enrollment.already();
    api.metrics.enrolled(enrolled);

    let mut results = Vec::new();
    let mut failures: Vec<ApiError> = Vec::new();
    for (index, photo) in enrollment.photos.into_iter().enumerate() {
        let (filename, quality) = (photo.label, photo.quality);
        match photo.result {
            Ok(template) => results.push(PhotoResult::Enrolled {
                index,
                filename,
                template,
                quality,
            }),
            Err(PhotoRefusal::AlreadyEnrolled {
                person,
                template,
                score,
            }) => results.push(PhotoResult::AlreadyEnrolled {
                index,
                filename,
                template,
                score,
                detail: format!(
                    "the same photo is enrolled for {person} already (template {template}); nothing stored"
                ),
                quality,
            }),
            Err(why) => {
                let e = refusal(why);
                let mut error = e.body();
                // The photo's own fields win over a rejection's (`no_such_face` has an `index`).
                for key in ["index", "filename", "status", "http_status"] {
                    error.extra.remove(key);
                }
                results.push(PhotoResult::Rejected {
                    index,
                    filename,
                    http_status: e.status.as_u16(),
                    error,
                });
                failures.push(e);
            }
        }
    }

    if enrolled == 0 && !failures.is_empty() {
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
        .with("results", results_json(&results)?));
    }
    let written = enrollment.written.as_ref();
    let body = Enrollment {
        person: id,
        enrolled,
        already_enrolled: already,
        rejected: results.len() - enrolled - already,
        templates: written.map(|w| w.templates.clone()),
        remote_confirmed: written.map(|w| w.remote_confirmed),
        results,
    };
    // 201 when something was stored; 200 when every photo was enrolled already.
    let status = if enrolled > 0 {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(body)).into_response())
}

pub async fn remove(
    State(api): State<AppState>,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<Json<FaceRemoved>> {
    let removed = api
        .cases
        .remove_face(EventSource::Api, id)
        .await
        .map_err(|e| case_error(&api, e))?;
    let note = (removed.templates == 0)
        .then_some("not in the local gallery: the deletion is queued for the central gallery");
    Ok(Json(FaceRemoved {
        face: id,
        removed,
        note,
    }))
}

/// The photos' results as the `results` field of an error body.
fn results_json(results: &[PhotoResult]) -> ApiResult<Value> {
    serde_json::to_value(results).map_err(|e| ApiError::internal(e.to_string()))
}
