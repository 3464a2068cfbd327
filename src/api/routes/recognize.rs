//! `/v1/verify` (1:1) and `/v1/identify` (1:N): vision on an inference slot, then the
//! use-case ([`crate::app::usecases`]), rendered as JSON.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::access::decision::Decision;
use crate::access::{EventSource, Outcome};
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiQuery, Image, Upload};
use crate::api::metrics::Stage;
use crate::api::responses::{
    DecidedFace, FaceRejection, FaceSeen, Identification, IdentifiedFace, UnusableFace,
    Verification,
};
use crate::app::usecases::{self, ProbeFace, UseCaseError};
use crate::gallery::GalleryError;
use crate::vision::{VisionError, frame};

/// Decode the image and find, align and embed every face, on an inference slot.
pub async fn analyse(api: &AppState, image: Image) -> ApiResult<Vec<ProbeFace>> {
    let admission = admit(api)?;
    let max_pixels = api.max_image_pixels;
    let liveness = usecases::PhotoLiveness::of(api.inference.models());
    let (faces, decode, vision) = api
        .inference
        .run(admission, move |pipeline| {
            let t0 = Instant::now();
            let img = frame::decode_image(&image.bytes, max_pixels)?;
            let decode = t0.elapsed();
            let t1 = Instant::now();
            let faces = usecases::probe_faces(pipeline, &img, liveness)?;
            Ok::<_, VisionError>((faces, decode, t1.elapsed()))
        })
        .await??;
    api.metrics.stage(Stage::Decode, decode);
    api.metrics.stage(Stage::DetectEmbed, vision);
    Ok(faces)
}

/// A place in the inference queue, counting refusals.
pub fn admit(api: &AppState) -> ApiResult<crate::api::limits::Admission> {
    api.inference
        .try_admit()
        .inspect_err(|_| api.metrics.busy())
}

/// Count central-gallery errors before passing them on.
pub fn gallery_error(api: &AppState, e: GalleryError) -> ApiError {
    if matches!(
        e,
        GalleryError::Remote(_) | GalleryError::RemoteUnavailable(_)
    ) {
        api.metrics.milvus_error();
    }
    ApiError::from(e)
}

/// A use-case's failure as the API answers it (central-gallery errors counted).
pub fn case_error(api: &AppState, e: UseCaseError) -> ApiError {
    match e {
        UseCaseError::Gallery(e) => gallery_error(api, e),
        e => e.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    person: Option<String>,
    face: Option<usize>,
}

pub async fn verify(
    State(api): State<AppState>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
    upload: Upload,
) -> ApiResult<Json<Verification>> {
    let person = q
        .person
        .or_else(|| upload.fields.get("person").cloned())
        .ok_or_else(|| {
            ApiError::bad_request(
                "name the claimed person: ?person=ID, or a multipart field `person`",
            )
        })?;
    // Before any inference: the claimed person must exist.
    api.cases
        .person(&person)
        .await
        .map_err(|e| case_error(&api, e))?;
    let image = upload.single()?;
    let faces = analyse(&api, image).await?;
    let v = api
        .cases
        .verify(EventSource::Api, &person, faces, q.face.unwrap_or(0))
        .await
        .map_err(|e| case_error(&api, e))?;
    api.metrics.stage(Stage::Gallery, v.gallery_time);
    api.metrics.decision(false, v.outcome);
    let verified = match v.result {
        Ok(verified) => verified,
        Err(why) => return Err(ApiError::rejected(&why)),
    };
    let face = v.face.as_ref();
    Ok(Json(Verification {
        person: v.person,
        name: v.name,
        score: verified.score,
        threshold: v.threshold,
        matches: verified.score.is_some_and(|s| s >= v.threshold),
        decision: v.outcome,
        reason: verified.reason,
        template: verified.template,
        faces_in_image: v.faces_in_image,
        face: face.map(|f| FaceSeen {
            bbox: f.bbox,
            quality: f.quality,
        }),
        liveness: face.and_then(|f| f.liveness),
    }))
}

pub async fn identify(
    State(api): State<AppState>,
    upload: Upload,
) -> ApiResult<Json<Identification>> {
    let image = upload.single()?;
    let faces = analyse(&api, image).await?;
    let ident = api
        .cases
        .identify(EventSource::Api, faces)
        .await
        .map_err(|e| case_error(&api, e))?;
    api.metrics.stage(Stage::Gallery, ident.gallery_time);
    if ident.faces.is_empty() {
        api.metrics.decision(true, Outcome::NoFace);
        return Ok(Json(Identification {
            threshold: ident.operating.threshold,
            operating_point: None,
            decision: Outcome::NoFace,
            faces: Vec::new(),
        }));
    }
    let overall = ident.outcome();
    let mut results = Vec::new();
    for (index, face) in ident.faces.into_iter().enumerate() {
        api.metrics.decision(true, face.outcome);
        match face.result {
            Err(why) => results.push(IdentifiedFace::Unusable(UnusableFace {
                index,
                bbox: face.bbox,
                quality: face.quality,
                usable: false,
                decision: Outcome::NoFace,
                rejection: FaceRejection {
                    reason: why.code(),
                    detail: why.to_string(),
                },
                candidates: Vec::new(),
            })),
            Ok(j) => {
                let (person, refusal) = match &j.decision {
                    Decision::Granted { person, .. } => (Some(person.clone()), None),
                    Decision::Refused { person, reason, .. } => {
                        (person.clone(), Some(reason.clone()))
                    }
                };
                results.push(IdentifiedFace::Decided(DecidedFace {
                    index,
                    bbox: face.bbox,
                    quality: face.quality,
                    usable: true,
                    decision: face.outcome,
                    reason: refusal.as_ref().map(|r| r.to_string()),
                    refusal,
                    person,
                    name: j.name,
                    score: j.best.as_ref().map(|m| m.score),
                    liveness: face.liveness,
                    candidates: j.found.candidates,
                    source: j.found.source,
                }));
            }
        }
    }
    Ok(Json(Identification {
        threshold: ident.operating.threshold,
        operating_point: Some(ident.operating),
        decision: overall,
        faces: results,
    }))
}
