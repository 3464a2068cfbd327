//! Enrollment: photos of a person become face templates.
//!
//! The duplicate-face rule, the same for the HTTP API and the command line: each usable face
//! is searched in the gallery first, and
//! - a face scoring [`SAME_PHOTO`] or more against one of this person's templates is the same
//!   photo again: nothing is stored, and the result names the template it matches (so that
//!   enrolling a folder twice adds nothing);
//! - a face matching another person at the same-person threshold or above is refused as a
//!   duplicate, unless the caller allows duplicates.
//!
//! Every photo gets one audit event: enrolled (with its template) or rejected (with why).

use crate::access::audit::FaceQuality;
use crate::access::{Action, NewEvent, Outcome};
use crate::gallery::enroll::{EnrollError, EnrollRejection, MIN_ENROLL_SHARPNESS, enrollment_face};
use crate::gallery::{Match, NewPerson, Written};
use crate::vision::{Pipeline, Quality, VisionError};

use super::{Source, UseCaseError, UseCases};

/// Similarity above which a new photo of a person counts as one already enrolled (the same
/// photo again scores ~1.0; two different photos of one person score 0.5-0.9 on LFW).
pub const SAME_PHOTO: f32 = 0.97;

/// The face of an enrollment photo.
#[derive(Debug, Clone)]
pub struct EnrollFace {
    pub quality: Quality,
    /// The normalised embedding.
    pub embedding: Vec<f32>,
}

/// Why a photo was not enrolled.
#[derive(Debug, thiserror::Error)]
pub enum PhotoRefusal {
    /// Not an image, or too large.
    #[error(transparent)]
    Unreadable(VisionError),
    /// No usable face: none, several, too small, turned, blurred…
    #[error(transparent)]
    Face(EnrollRejection),
    /// The same photo of this person is enrolled already (nothing stored; not an error).
    #[error("already enrolled for {person} (similarity {score:.3} to template {template})")]
    AlreadyEnrolled {
        person: String,
        template: u64,
        score: f32,
    },
    /// The face matches another person.
    #[error(
        "the face already matches person {person} (score {score:.3}, threshold {threshold:.3})"
    )]
    Duplicate {
        person: String,
        score: f32,
        threshold: f32,
    },
}

/// One photo offered for enrollment, after vision ([`look`]).
#[derive(Debug)]
pub struct EnrollPhoto {
    /// The caller's name for it (a file name), given back in the result.
    pub label: Option<String>,
    pub face: Result<EnrollFace, PhotoRefusal>,
}

/// The one face of an enrollment photo (`index` picks one of several: 0 = largest), with the
/// enrollment quality bar ([`MIN_ENROLL_SHARPNESS`]).
pub fn look(
    pipeline: &mut Pipeline,
    img: &image::RgbImage,
    index: Option<usize>,
) -> Result<EnrollFace, PhotoRefusal> {
    match enrollment_face(pipeline, img, index, MIN_ENROLL_SHARPNESS) {
        Ok((face, embedding)) => Ok(EnrollFace {
            quality: face.quality,
            embedding,
        }),
        Err(EnrollError::Rejected(r)) => Err(PhotoRefusal::Face(r)),
        Err(EnrollError::Vision(e)) => Err(PhotoRefusal::Unreadable(e)),
    }
}

/// Whose photos these are.
#[derive(Debug, Clone)]
pub enum Who {
    /// An existing person: [`UseCaseError::NoPerson`] otherwise (the HTTP API).
    Existing(String),
    /// This person, created when absent (once a photo is usable), or added to when its id
    /// exists already (the command line).
    CreateIfAbsent(NewPerson),
}

/// An enrollment request.
#[derive(Debug)]
pub struct EnrollRequest {
    pub source: Source,
    pub who: Who,
    pub photos: Vec<EnrollPhoto>,
    /// Enroll faces that match another person too.
    pub allow_duplicate: bool,
}

/// What became of one photo.
#[derive(Debug)]
pub struct PhotoOutcome {
    pub label: Option<String>,
    pub quality: Option<Quality>,
    /// The new template's id, or why the photo was not enrolled.
    pub result: Result<u64, PhotoRefusal>,
}

/// The result of an enrollment.
#[derive(Debug)]
pub struct Enrollment {
    /// The person's id; `None` when a person to create was not (no usable photo).
    pub person: Option<String>,
    /// The person was created by this request.
    pub created: bool,
    /// One per photo, in the request's order.
    pub photos: Vec<PhotoOutcome>,
    /// The gallery write (`None` when nothing was written).
    pub written: Option<Written>,
}

impl Enrollment {
    /// Templates stored.
    pub fn enrolled(&self) -> usize {
        self.photos.iter().filter(|p| p.result.is_ok()).count()
    }

    /// Photos skipped because they are enrolled already.
    pub fn already(&self) -> usize {
        self.photos
            .iter()
            .filter(|p| matches!(p.result, Err(PhotoRefusal::AlreadyEnrolled { .. })))
            .count()
    }
}

impl UseCases {
    /// Enroll photos of a person: the duplicate-face rule (module documentation), then the
    /// person (when new) and the templates in one write, then one audit event per photo,
    /// durable before this returns.
    pub async fn enroll(&self, req: EnrollRequest) -> Result<Enrollment, UseCaseError> {
        let (mut person, to_create) = match req.who {
            Who::Existing(id) => {
                self.person(&id).await?;
                (Some(id), None)
            }
            Who::CreateIfAbsent(new) => match &new.id {
                Some(id) if self.gallery.person(id).await?.is_some() => (Some(id.clone()), None),
                _ => (None, Some(new)),
            },
        };
        // The id to compare candidates with (a new person's given id, if any).
        let own_id = person
            .clone()
            .or_else(|| to_create.as_ref().and_then(|n| n.id.clone()));

        let mut photos = Vec::with_capacity(req.photos.len());
        let mut embeddings = Vec::new();
        for photo in req.photos {
            let (quality, result) = match photo.face {
                Err(why) => (None, Err(why)),
                Ok(face) => {
                    let found = self
                        .gallery
                        .identify(&face.embedding, self.top_k.max(2))
                        .await?;
                    let verdict = duplicate_rule(
                        &found.candidates,
                        own_id.as_deref(),
                        self.threshold,
                        req.allow_duplicate,
                    );
                    if verdict.is_ok() {
                        embeddings.push(face.embedding);
                    }
                    (Some(face.quality), verdict.map(|()| 0))
                }
            };
            photos.push(PhotoOutcome {
                label: photo.label,
                quality,
                result,
            });
        }

        let mut created = false;
        let mut written = None;
        if !embeddings.is_empty() {
            if let Some(new) = to_create {
                person = Some(self.gallery.create_person(new).await?.id);
                created = true;
            }
            let id = person.clone().unwrap_or_default();
            let w = self.gallery.add_templates(&id, embeddings).await?;
            let mut templates = w.templates.iter().copied();
            for p in &mut photos {
                if let Ok(t) = &mut p.result {
                    *t = templates.next().unwrap_or_default();
                }
            }
            written = Some(w);
        }

        let events = photos
            .iter()
            .map(|p| {
                let mut e = match &p.result {
                    Ok(t) => {
                        NewEvent::new(Action::Enroll, Outcome::Enrolled, req.source).template(*t)
                    }
                    Err(why) => NewEvent::new(Action::Enroll, Outcome::Rejected, req.source)
                        .reason(why.to_string()),
                };
                if let Some(id) = &own_id {
                    e = e.person(id.clone());
                } else if let Some(id) = &person {
                    e = e.person(id.clone());
                }
                if let Some(q) = &p.quality {
                    e = e.quality(FaceQuality::from(q));
                }
                e
            })
            .collect();
        self.publish(events)?;
        let enrollment = Enrollment {
            person,
            created,
            photos,
            written,
        };
        tracing::info!(
            person = enrollment.person.as_deref().unwrap_or("-"),
            enrolled = enrollment.enrolled(),
            rejected = enrollment.photos.len() - enrollment.enrolled(),
            "enrollment"
        );
        Ok(enrollment)
    }
}

/// The duplicate-face rule on one face's candidates (one per person, best first).
pub fn duplicate_rule(
    candidates: &[Match],
    own_id: Option<&str>,
    threshold: f32,
    allow_duplicate: bool,
) -> Result<(), PhotoRefusal> {
    if let Some(same) = candidates
        .iter()
        .find(|m| Some(m.person.as_str()) == own_id && m.score >= SAME_PHOTO)
    {
        return Err(PhotoRefusal::AlreadyEnrolled {
            person: same.person.clone(),
            template: same.template,
            score: same.score,
        });
    }
    if !allow_duplicate
        && let Some(other) = candidates
            .iter()
            .find(|m| Some(m.person.as_str()) != own_id && m.score >= threshold)
    {
        return Err(PhotoRefusal::Duplicate {
            person: other.person.clone(),
            score: other.score,
            threshold,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: u64, s: f32) -> Match {
        Match {
            person: p.into(),
            template: t,
            score: s,
        }
    }

    #[test]
    fn the_same_photo_is_already_enrolled_and_another_persons_face_a_duplicate() {
        let t = 0.41;
        assert!(
            duplicate_rule(&[m("a", 1, 0.99)], Some("a"), t, false)
                .is_err_and(|e| matches!(e, PhotoRefusal::AlreadyEnrolled { template: 1, .. }))
        );
        // Another photo of the same person is welcome.
        assert!(duplicate_rule(&[m("a", 1, 0.8)], Some("a"), t, false).is_ok());
        // Another person above the threshold, even when second: a duplicate…
        let c = [m("a", 1, 0.8), m("b", 2, 0.5)];
        assert!(
            duplicate_rule(&c, Some("a"), t, false).is_err_and(|e| matches!(
                e,
                PhotoRefusal::Duplicate { ref person, .. } if person == "b"
            ))
        );
        // …unless allowed; the same photo is refused even then.
        assert!(duplicate_rule(&c, Some("a"), t, true).is_ok());
        assert!(duplicate_rule(&[m("a", 1, 0.99)], Some("a"), t, true).is_err());
        // A new person with no id: any match is somebody else.
        assert!(
            duplicate_rule(&[m("a", 1, 0.99)], None, t, false)
                .is_err_and(|e| matches!(e, PhotoRefusal::Duplicate { .. }))
        );
        assert!(duplicate_rule(&[m("a", 1, 0.3)], None, t, false).is_ok());
    }
}
