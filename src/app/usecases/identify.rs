//! 1:N identification of a photo: who is each face? The decision per face is the door's
//! ([`crate::access::probe::observe`] with the photo rule), then the still-image liveness
//! check; each face gets one audit event.

use std::time::{Duration, Instant};

use crate::access::audit::FaceQuality;
use crate::access::decision::{self, Decision, OperatingState};
use crate::access::probe;
use crate::access::{Action, NewEvent, Outcome};
use crate::gallery::enroll::EnrollRejection;
use crate::gallery::{self, Match, now_ms};
use crate::vision::liveness::StillLiveness;
use crate::vision::{BBox, Quality};

use super::{ProbeFace, Source, UseCaseError, UseCases};

/// The decision about one face of the photo.
#[derive(Debug, Clone)]
pub struct FaceDecision {
    pub bbox: BBox,
    pub quality: Quality,
    pub liveness: Option<StillLiveness>,
    /// Granted, denied (recognised but refused), unknown, or no_face (unusable).
    pub outcome: Outcome,
    /// The decision, or why the face could not be judged.
    pub result: Result<Judged, EnrollRejection>,
}

/// A usable face, decided.
#[derive(Debug, Clone)]
pub struct Judged {
    /// Granted, or refused with the typed reason (the door's [`Decision`]).
    pub decision: Decision,
    /// The decided person's display name (when recognised and their record exists).
    pub name: Option<String>,
    /// The decided person's candidate (template and score).
    pub best: Option<Match>,
    /// The gallery's answer: candidates, one per person, best first.
    pub found: gallery::Identification,
}

/// The result of an identification.
#[derive(Debug, Clone)]
pub struct Identification {
    /// One per face in the photo, largest first; empty when no face was found.
    pub faces: Vec<FaceDecision>,
    /// The decision rule in force.
    pub operating: OperatingState,
    /// Time spent in the gallery (searches and record look-ups).
    pub gallery_time: Duration,
}

impl Identification {
    /// The photo's decision: granted if any face is, else that of the largest face; no_face
    /// for a photo without one.
    pub fn outcome(&self) -> Outcome {
        self.faces
            .iter()
            .find(|f| f.outcome == Outcome::Granted)
            .or(self.faces.first())
            .map_or(Outcome::NoFace, |f| f.outcome)
    }
}

/// The audit outcome of a decision: granted; denied when someone was recognised (and refused
/// for another reason); unknown when nobody was.
pub fn outcome_of(d: &Decision) -> Outcome {
    match d {
        Decision::Granted { .. } => Outcome::Granted,
        Decision::Refused { reason, .. } if reason.recognised() => Outcome::Denied,
        Decision::Refused { .. } => Outcome::Unknown,
    }
}

impl UseCases {
    /// Decide about every face of a photo (from [`super::probe_faces`]), with one audit event
    /// per face (one "no face" event for a photo without any), durable before this returns.
    pub async fn identify(
        &self,
        source: Source,
        faces: Vec<ProbeFace>,
    ) -> Result<Identification, UseCaseError> {
        let mut gallery_time = Duration::ZERO;
        let mut events = Vec::new();
        if faces.is_empty() {
            events.push(
                NewEvent::new(Action::Identify, Outcome::NoFace, source).reason("no face found"),
            );
        }
        let mut decided = Vec::with_capacity(faces.len());
        for face in faces {
            let quality = FaceQuality::from(&face.quality);
            let embedding = match face.embedding {
                Ok(e) => e,
                Err(r) => {
                    let why = EnrollRejection::from(r);
                    events.push(
                        NewEvent::new(Action::Identify, Outcome::NoFace, source)
                            .reason(why.to_string())
                            .quality(quality),
                    );
                    decided.push(FaceDecision {
                        bbox: face.bbox,
                        quality: face.quality,
                        liveness: face.liveness,
                        outcome: Outcome::NoFace,
                        result: Err(why),
                    });
                    continue;
                }
            };
            let t = Instant::now();
            let rule = self.operating.rule();
            let seen = probe::observe(
                self.gallery.as_ref(),
                &embedding,
                self.top_k,
                &rule,
                now_ms(),
            )
            .await;
            gallery_time += t.elapsed();
            let seen = seen?;
            let decision = decision::unless_live(
                seen.decision,
                face.liveness.as_ref().and_then(StillLiveness::refusal),
            );
            let outcome = outcome_of(&decision);
            let person = match &decision {
                Decision::Granted { person, .. } => Some(person.clone()),
                Decision::Refused { person, .. } => person.clone(),
            };
            let name = seen
                .record
                .as_ref()
                .filter(|r| person.as_deref() == Some(r.id.as_str()))
                .map(|r| r.name.clone());
            let best = person
                .as_ref()
                .and_then(|p| seen.found.candidates.iter().find(|m| &m.person == p))
                .cloned();
            let mut event = NewEvent::new(Action::Identify, outcome, source).quality(quality);
            if let Some(m) = &best {
                event = event.person(&m.person).template(m.template).score(m.score);
            } else if let Some(top) = seen.found.candidates.first() {
                event = event.score(top.score);
            }
            if let Decision::Refused { reason, .. } = &decision {
                event = event.reason(reason.to_string());
            }
            events.push(event);
            tracing::info!(
                person = person.as_deref().unwrap_or("-"),
                decision = outcome.as_str(),
                "identify"
            );
            decided.push(FaceDecision {
                bbox: face.bbox,
                quality: face.quality,
                liveness: face.liveness,
                outcome,
                result: Ok(Judged {
                    decision,
                    name,
                    best,
                    found: seen.found,
                }),
            });
        }
        self.publish_decision(events);
        Ok(Identification {
            faces: decided,
            operating: self.operating.state(),
            gallery_time,
        })
    }
}
