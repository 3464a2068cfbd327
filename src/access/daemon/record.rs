//! The door's records (decisions, door events, requests) and the audit events they become.

use super::*;

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    Decision {
        at_ms: i64,
        verdict: Verdict,
        quality: Option<Quality>,
        /// From the frame's capture to the decision.
        latency_ms: f64,
        frame: u64,
        /// The visit's liveness at the decision (when liveness is on at the door).
        liveness: Option<VisitScore>,
        /// The aligned face crop of the deciding frame, when `save_face_crops` is on (kept out
        /// of the JSON line; the audit log stores it as JPEG).
        #[serde(skip)]
        face: Option<image::RgbImage>,
    },
    Door {
        at_ms: i64,
        event: DoorEvent,
        /// For an unlock by face: from the deciding frame's capture to the relay edge.
        latency_ms: Option<f64>,
    },
    /// What a request did (an enrollment, a deletion, a verification, a remote unlock…),
    /// from the HTTP API or the command line: its audit event, as the use-case wrote it
    /// (`crate::app::usecases`).
    Request {
        at_ms: i64,
        event: crate::access::audit::NewEvent,
    },
}

impl Record {
    /// When it happened (Unix ms).
    pub fn at_ms(&self) -> i64 {
        match self {
            Record::Decision { at_ms, .. }
            | Record::Door { at_ms, .. }
            | Record::Request { at_ms, .. } => *at_ms,
        }
    }

    /// The audit-log entry for this record, if it is one the log keeps (decisions at the door,
    /// unlocks, alarms, and every request's event).
    pub fn audit_event(&self) -> Option<crate::access::audit::NewEvent> {
        use crate::access::audit::{Action, EventSource, NewEvent, Outcome};
        match self {
            Record::Decision {
                verdict,
                quality,
                face,
                liveness,
                ..
            } => {
                let (outcome, person, score, reason) = match verdict {
                    Verdict::Granted { person, score } => {
                        (Outcome::Granted, Some(person), *score, None)
                    }
                    Verdict::Denied {
                        person,
                        score,
                        reason,
                    } => (Outcome::Denied, person.as_ref(), *score, Some(reason)),
                    Verdict::Unknown { score, reason } => {
                        (Outcome::Unknown, None, *score, Some(reason))
                    }
                    _ => return None,
                };
                let mut e = NewEvent::new(Action::Access, outcome, EventSource::Door).score(score);
                if let Some(p) = person {
                    e = e.person(p.clone());
                }
                if let Some(r) = reason {
                    e = e.reason(r.to_string());
                } else if let Some(v) = liveness.filter(|v| !v.live) {
                    // liveness = "warn": admitted, but the log says what was seen.
                    e = e.reason(format!("liveness warning: not live (score {:.2})", v.score));
                }
                if let Some(q) = quality {
                    e = e.quality(q.into());
                }
                if let Some(crop) = face {
                    match face_jpeg(crop) {
                        Ok(jpeg) => e = e.face_jpeg(jpeg),
                        Err(err) => tracing::warn!(error = %err, "face crop not saved"),
                    }
                }
                Some(e)
            }
            Record::Door {
                event: DoorEvent::Unlocked { by },
                ..
            } => {
                let e = NewEvent::new(Action::Unlock, Outcome::Unlocked, EventSource::Door);
                Some(match by {
                    UnlockBy::Face { person } => e.person(person.clone()).reason("face"),
                    UnlockBy::Remote => e.reason("remote"),
                    UnlockBy::ExitButton => e.reason("exit button"),
                })
            }
            Record::Door {
                event: event @ (DoorEvent::Forced | DoorEvent::HeldOpen { .. }),
                ..
            } => Some(
                NewEvent::new(Action::Access, Outcome::Denied, EventSource::Door).reason(
                    match event {
                        DoorEvent::Forced => "door forced open".to_owned(),
                        _ => "door held open".to_owned(),
                    },
                ),
            ),
            Record::Door { .. } => None,
            Record::Request { event, .. } => Some(event.clone()),
        }
    }
}

/// JPEG quality of the stored face crops.
pub const FACE_JPEG_QUALITY: u8 = 85;

/// A face crop as the audit log stores it: JPEG at [`FACE_JPEG_QUALITY`].
pub fn face_jpeg(crop: &image::RgbImage) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(8 * 1024);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, FACE_JPEG_QUALITY)
        .encode_image(crop)?;
    Ok(out)
}
