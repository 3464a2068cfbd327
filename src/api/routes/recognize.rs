//! `/v1/verify` (1:1) and `/v1/identify` (1:N).

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::audit::FaceQuality;
use crate::access::decision::{self, Decision, Refusal};
use crate::access::rules::LocalTime;
use crate::access::{self, Action, EventSource, NewEvent, Outcome};
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiQuery, Image, Upload};
use crate::api::metrics::Stage;
use crate::gallery::enroll::EnrollRejection;
use crate::gallery::{GalleryError, now_ms};
use crate::vision::liveness::{Mode, StillLiveness};
use crate::vision::{BBox, Quality, Rejection, VisionError, frame};

/// One face found in a probe image.
pub struct ProbeFace {
    pub bbox: BBox,
    pub quality: Quality,
    pub embedding: Result<Vec<f32>, Rejection>,
    /// `None` when liveness is off in the API (`liveness.api = "off"`).
    pub liveness: Option<StillLiveness>,
}

/// Decode the image and find, align and embed every face, on an inference slot.
pub async fn analyse(api: &AppState, image: Image) -> ApiResult<Vec<ProbeFace>> {
    let admission = admit(api)?;
    let max_pixels = api.max_image_pixels;
    let live_mode = api
        .inference
        .models()
        .liveness
        .as_ref()
        .map(|l| (l.config.api, l.config.threshold))
        .filter(|(m, _)| *m != Mode::Off);
    let (faces, decode, vision) = api
        .inference
        .run(admission, move |pipeline| {
            let t0 = Instant::now();
            let img = frame::decode_image(&image.bytes, max_pixels)?;
            let decode = t0.elapsed();
            let t1 = Instant::now();
            let mut faces = Vec::new();
            for f in pipeline.analyse(&img)? {
                let liveness = live_mode.map(|(mode, threshold)| {
                    StillLiveness::judge(mode, threshold, pipeline.liveness(&img, &f.detection))
                });
                faces.push(ProbeFace {
                    bbox: f.detection.bbox,
                    quality: f.quality,
                    embedding: f.embedding.map(|e| e.0),
                    liveness,
                });
            }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    person: Option<String>,
    face: Option<usize>,
}

/// The API's view of a decision: the audit outcome and its reason in words.
#[derive(Serialize)]
struct ApiDecision {
    decision: Outcome,
    reason: Option<String>,
}

/// The decision for a recognised person at `score`: granted, or denied with the reason.
async fn decide(
    api: &AppState,
    person: &str,
    score: f32,
) -> ApiResult<(ApiDecision, Option<String>)> {
    if score < api.threshold {
        return Ok((
            ApiDecision {
                decision: Outcome::Denied,
                reason: Some(format!(
                    "the face does not match (score {score:.3} below the threshold {:.3})",
                    api.threshold
                )),
            },
            None,
        ));
    }
    let record = api
        .gallery
        .person(person)
        .await
        .map_err(|e| gallery_error(api, e))?;
    let Some(record) = record else {
        return Ok((
            ApiDecision {
                decision: Outcome::Denied,
                reason: Some("the matching person's record is missing".into()),
            },
            None,
        ));
    };
    let decision = match access::refusal(&record, now_ms()) {
        Some(why) => ApiDecision {
            decision: Outcome::Denied,
            reason: Some(why),
        },
        None => ApiDecision {
            decision: Outcome::Granted,
            reason: None,
        },
    };
    Ok((decision, Some(record.name)))
}

/// A grant becomes a "not live" refusal when the API enforces liveness and the face is not live.
fn not_live(d: ApiDecision, liveness: Option<&StillLiveness>) -> ApiDecision {
    match liveness.and_then(StillLiveness::refusal) {
        Some(detail) if d.decision == Outcome::Granted => ApiDecision {
            decision: Outcome::Denied,
            reason: Some(
                Refusal::NotLive {
                    detail: Some(detail),
                }
                .to_string(),
            ),
        },
        _ => d,
    }
}

fn record_event(api: &AppState, action: Action, event: NewEvent) -> ApiResult<()> {
    api.metrics
        .decision(action == Action::Identify, event.outcome);
    api.audit.append(event)?;
    Ok(())
}

/// A probe face without an embedding: the audit entry and the 422.
fn unusable(
    api: &AppState,
    action: Action,
    why: EnrollRejection,
    person: Option<&str>,
    quality: Option<&Quality>,
) -> ApiError {
    let mut event =
        NewEvent::new(action, Outcome::NoFace, EventSource::Api).reason(why.to_string());
    if let Some(p) = person {
        event = event.person(p);
    }
    if let Some(q) = quality {
        event = event.quality(FaceQuality::from(q));
    }
    match record_event(api, action, event) {
        Ok(()) => ApiError::rejected(&why),
        Err(e) => e,
    }
}

pub async fn verify(
    State(api): State<AppState>,
    ApiQuery(q): ApiQuery<VerifyQuery>,
    upload: Upload,
) -> ApiResult<Json<Value>> {
    let person = q
        .person
        .or_else(|| upload.fields.get("person").cloned())
        .ok_or_else(|| {
            ApiError::bad_request(
                "name the claimed person: ?person=ID, or a multipart field `person`",
            )
        })?;
    if api
        .gallery
        .person(&person)
        .await
        .map_err(|e| gallery_error(&api, e))?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no person with id {person:?}")));
    }
    let image = upload.single()?;
    let mut faces = analyse(&api, image).await?;
    let index = q.face.unwrap_or(0);
    let count = faces.len();
    if index >= count {
        let why = if count == 0 {
            EnrollRejection::NoFace
        } else {
            EnrollRejection::NoSuchFace { index, count }
        };
        return Err(unusable(&api, Action::Verify, why, Some(&person), None));
    }
    let face = faces.swap_remove(index);
    let embedding = match face.embedding {
        Ok(e) => e,
        Err(r) => {
            return Err(unusable(
                &api,
                Action::Verify,
                r.into(),
                Some(&person),
                Some(&face.quality),
            ));
        }
    };
    let t = Instant::now();
    let found = api.gallery.verify(&person, &embedding).await;
    api.metrics.stage(Stage::Gallery, t.elapsed());
    let found = found.map_err(|e| gallery_error(&api, e))?;
    let (decision, template, score, name) = match &found {
        None => (
            ApiDecision {
                decision: Outcome::Denied,
                reason: Some("the person has no enrolled face".into()),
            },
            None,
            None,
            None,
        ),
        Some(m) => {
            let (d, name) = decide(&api, &person, m.score).await?;
            (
                not_live(d, face.liveness.as_ref()),
                Some(m.template),
                Some(m.score),
                name,
            )
        }
    };
    let mut event = NewEvent::new(Action::Verify, decision.decision, EventSource::Api)
        .person(&person)
        .quality(FaceQuality::from(&face.quality));
    if let Some(s) = score {
        event = event.score(s);
    }
    if let Some(t) = template {
        event = event.template(t);
    }
    if let Some(r) = &decision.reason {
        event = event.reason(r.clone());
    }
    record_event(&api, Action::Verify, event)?;
    tracing::info!(person = %person, decision = decision.decision.as_str(), "verify");
    Ok(Json(json!({
        "person": person,
        "name": name,
        "score": score,
        "threshold": api.threshold,
        "match": score.is_some_and(|s| s >= api.threshold),
        "decision": decision.decision,
        "reason": decision.reason,
        "template": template,
        "faces_in_image": count,
        "face": {"box": face.bbox, "quality": face.quality},
        "liveness": face.liveness,
    })))
}

pub async fn identify(State(api): State<AppState>, upload: Upload) -> ApiResult<Json<Value>> {
    let image = upload.single()?;
    let faces = analyse(&api, image).await?;
    if faces.is_empty() {
        record_event(
            &api,
            Action::Identify,
            NewEvent::new(Action::Identify, Outcome::NoFace, EventSource::Api)
                .reason("no face found"),
        )?;
        return Ok(Json(json!({
            "threshold": api.operating.rule().threshold,
            "decision": Outcome::NoFace,
            "faces": [],
        })));
    }
    let mut results = Vec::new();
    for (index, face) in faces.into_iter().enumerate() {
        let quality = FaceQuality::from(&face.quality);
        let embedding = match face.embedding {
            Ok(e) => e,
            Err(r) => {
                let why = EnrollRejection::from(r);
                record_event(
                    &api,
                    Action::Identify,
                    NewEvent::new(Action::Identify, Outcome::NoFace, EventSource::Api)
                        .reason(why.to_string())
                        .quality(quality),
                )?;
                results.push(json!({
                    "index": index,
                    "box": face.bbox,
                    "quality": face.quality,
                    "usable": false,
                    "decision": Outcome::NoFace,
                    "rejection": {"reason": why.code(), "detail": why.to_string()},
                    "candidates": [],
                }));
                continue;
            }
        };
        let t = Instant::now();
        let found = api.gallery.identify(&embedding, api.top_k.max(2)).await;
        api.metrics.stage(Stage::Gallery, t.elapsed());
        let found = found.map_err(|e| gallery_error(&api, e))?;
        // The decision core, the same as the door's (for one photo instead of a visit).
        let rule = api.operating.rule();
        let record = match decision::recognise(&found.candidates, &rule) {
            Ok(m) => api
                .gallery
                .person(&m.person)
                .await
                .map_err(|e| gallery_error(&api, e))?,
            Err(_) => None,
        };
        let now = now_ms();
        let core = decision::decide(
            &found.candidates,
            &rule,
            &decision::Context {
                record: record.as_ref(),
                offline: found.refuse.as_deref(),
                now_ms: now,
                local: LocalTime::at(now),
            },
        );
        let core = decision::unless_live(
            core,
            face.liveness.as_ref().and_then(StillLiveness::refusal),
        );
        let (decision, person, score, refusal) = match &core {
            Decision::Granted { person, score } => (
                ApiDecision {
                    decision: Outcome::Granted,
                    reason: None,
                },
                Some(person.clone()),
                Some(*score),
                None,
            ),
            Decision::Refused {
                person,
                score,
                reason,
            } => (
                ApiDecision {
                    decision: if reason.recognised() {
                        Outcome::Denied
                    } else {
                        Outcome::Unknown
                    },
                    reason: Some(reason.to_string()),
                },
                person.clone(),
                *score,
                Some(reason),
            ),
        };
        let name = record
            .as_ref()
            .filter(|r| person.as_deref() == Some(r.id.as_str()))
            .map(|r| r.name.clone());
        let best = person
            .as_ref()
            .and_then(|p| found.candidates.iter().find(|m| &m.person == p));
        let mut event =
            NewEvent::new(Action::Identify, decision.decision, EventSource::Api).quality(quality);
        if let Some(m) = best {
            event = event.person(&m.person).template(m.template).score(m.score);
        } else if let Some(top) = found.candidates.first() {
            event = event.score(top.score);
        }
        if let Some(r) = &decision.reason {
            event = event.reason(r.clone());
        }
        record_event(&api, Action::Identify, event)?;
        tracing::info!(
            person = person.as_deref().unwrap_or("-"),
            decision = decision.decision.as_str(),
            "identify"
        );
        let _ = score;
        results.push(json!({
            "index": index,
            "box": face.bbox,
            "quality": face.quality,
            "usable": true,
            "decision": decision.decision,
            "reason": decision.reason,
            "refusal": refusal,
            "person": person,
            "name": name,
            "score": best.map(|m| m.score),
            "liveness": face.liveness,
            "candidates": found.candidates,
            "source": found.source,
        }));
    }
    // The image's decision: granted if any face is granted, else that of the largest face.
    let overall = results
        .iter()
        .find(|r| r["decision"] == json!(Outcome::Granted))
        .or(results.first())
        .map(|r| r["decision"].clone())
        .unwrap_or(Value::Null);
    let op = api.operating.state();
    Ok(Json(json!({
        "threshold": op.threshold,
        "operating_point": op,
        "decision": overall,
        "faces": results,
    })))
}
