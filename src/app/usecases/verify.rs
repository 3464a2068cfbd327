//! 1:1 verification: is this face the claimed person? The decision core with the same-person
//! threshold (no margin: there is one candidate), the person's record and rules, then the
//! still-image liveness check; one audit event.

use std::time::{Duration, Instant};

use crate::access::audit::FaceQuality;
use crate::access::decision::{self, Decision, Refusal, Rule};
use crate::access::rules::LocalTime;
use crate::access::{Action, NewEvent, Outcome};
use crate::gallery::enroll::EnrollRejection;
use crate::gallery::now_ms;
use crate::vision::liveness::StillLiveness;

use super::{ProbeFace, Source, UseCaseError, UseCases};

/// The result of a verification.
#[derive(Debug, Clone)]
pub struct Verification {
    pub person: String,
    /// The claimed person's display name, when the face matches them.
    pub name: Option<String>,
    /// Faces found in the photo.
    pub faces_in_image: usize,
    /// The face checked, or `None` when the photo has no usable face at the index asked
    /// (see `result`).
    pub face: Option<ProbeFace>,
    /// Granted or denied (a claim refused is always denied), or no_face.
    pub outcome: Outcome,
    /// The decision, or why no face could be judged.
    pub result: Result<Verified, EnrollRejection>,
    /// The same-person threshold used.
    pub threshold: f32,
    pub gallery_time: Duration,
}

/// A usable face compared with the claimed person.
#[derive(Debug, Clone)]
pub struct Verified {
    pub decision: Decision,
    /// Why it was refused, in words.
    pub reason: Option<String>,
    /// Best score against the person's templates (`None`: they have none).
    pub score: Option<f32>,
    /// The template that scored it.
    pub template: Option<u64>,
}

impl UseCases {
    /// Verify face `index` (0 = largest) of a photo (from [`super::probe_faces`]) against the
    /// claimed `person`, with its audit event, durable before this returns.
    /// [`UseCaseError::NoPerson`] when the person does not exist (no event then).
    pub async fn verify(
        &self,
        source: Source,
        person: &str,
        mut faces: Vec<ProbeFace>,
        index: usize,
    ) -> Result<Verification, UseCaseError> {
        let t = Instant::now();
        let record = self.person(person).await?;
        let mut gallery_time = t.elapsed();
        let count = faces.len();
        let event = NewEvent::new(Action::Verify, Outcome::NoFace, source).person(person);
        let unusable = |why: EnrollRejection, face: Option<ProbeFace>| {
            let mut e = event.clone().reason(why.to_string());
            if let Some(f) = &face {
                e = e.quality(FaceQuality::from(&f.quality));
            }
            (e, face, Outcome::NoFace, Err(why))
        };
        let (event, face, outcome, result) = if index >= count {
            let why = if count == 0 {
                EnrollRejection::NoFace
            } else {
                EnrollRejection::NoSuchFace { index, count }
            };
            unusable(why, None)
        } else {
            let face = faces.swap_remove(index);
            match &face.embedding {
                Err(r) => unusable(r.clone().into(), Some(face)),
                Ok(embedding) => {
                    let t = Instant::now();
                    let found = self.gallery.verify(person, embedding).await;
                    gallery_time += t.elapsed();
                    let found = found?;
                    let now = now_ms();
                    let rule = Rule {
                        threshold: self.threshold,
                        margin: 0.0,
                    };
                    let candidates: Vec<_> = found.iter().cloned().collect();
                    let decision = decision::decide(
                        &candidates,
                        &rule,
                        &decision::Context {
                            record: Some(&record),
                            offline: None,
                            now_ms: now,
                            local: LocalTime::at(now),
                        },
                    );
                    let decision = decision::unless_live(
                        decision,
                        face.liveness.as_ref().and_then(StillLiveness::refusal),
                    );
                    let reason = match &decision {
                        Decision::Granted { .. } => None,
                        Decision::Refused {
                            reason: Refusal::NoCandidate,
                            ..
                        } => Some("the person has no enrolled face".to_owned()),
                        Decision::Refused {
                            reason: Refusal::BelowThreshold { score, threshold },
                            ..
                        } => Some(format!(
                            "the face does not match (score {score:.3} below the threshold \
                             {threshold:.3})"
                        )),
                        Decision::Refused { reason, .. } => Some(reason.to_string()),
                    };
                    let outcome = match decision {
                        Decision::Granted { .. } => Outcome::Granted,
                        Decision::Refused { .. } => Outcome::Denied,
                    };
                    let mut e = NewEvent::new(Action::Verify, outcome, source)
                        .person(person)
                        .quality(FaceQuality::from(&face.quality));
                    if let Some(m) = &found {
                        e = e.score(m.score).template(m.template);
                    }
                    if let Some(r) = &reason {
                        e = e.reason(r.clone());
                    }
                    let verified = Verified {
                        decision,
                        reason,
                        score: found.as_ref().map(|m| m.score),
                        template: found.as_ref().map(|m| m.template),
                    };
                    (e, Some(face), outcome, Ok(verified))
                }
            }
        };
        self.publish_decision(vec![event]);
        tracing::info!(person = %person, decision = outcome.as_str(), "verify");
        // The name only for a face that matches the claim.
        let matched = result
            .as_ref()
            .ok()
            .and_then(|v| v.score)
            .is_some_and(|s| s >= self.threshold);
        Ok(Verification {
            person: person.to_owned(),
            name: matched.then_some(record.name),
            faces_in_image: count,
            face,
            outcome,
            result,
            threshold: self.threshold,
            gallery_time,
        })
    }
}
