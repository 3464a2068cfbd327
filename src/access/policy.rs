//! The door's multi-frame policy: from the faces of consecutive frames to one decision per visit.
//!
//! A visit is a track: consecutive frames with a usable face of the same person (a frame
//! without a face ends it; a face that does not match the track's so far, by the embedder's
//! 1:1 threshold, starts a new one). After `frames` usable frames the track's embeddings are
//! fused (mean of the normalised embeddings) and the fused face is decided on once, by the
//! decision core ([`super::decision`]): the same rule the HTTP API applies to one photo,
//! calibrated for a visit. One visit is one event: after a decision about a person (or about an
//! unknown face) the same decision is not repeated for `cooldown_ms`. Optional anti-passback:
//! a person granted once is refused for `anti_passback_ms` unless an exit was recorded.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::decision::{Decision, Refusal};

/// The `[access]` settings the policy uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Usable frames fused into one decision.
    pub frames: u32,
    /// Cosine at or above which a frame's face is the same person as the track's (the
    /// embedder's 1:1 threshold); under it a new track starts.
    pub same_face: f32,
    pub cooldown_ms: u64,
    /// 0 = off.
    pub anti_passback_ms: u64,
}

/// What one frame shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    NoFace,
    /// A face too small or turned to judge: neither ends nor extends the track.
    Unusable,
    /// A usable face's normalised embedding.
    Face(Vec<f32>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Idle,
    /// A face is there but no decision yet.
    Looking,
    Granted {
        person: String,
        score: f32,
    },
    /// Recognised but refused; `reason` says why.
    Denied {
        person: Option<String>,
        score: f32,
        reason: Refusal,
    },
    /// A face that is nobody enrolled (or too ambiguous to name).
    Unknown {
        score: f32,
        reason: Refusal,
    },
    /// Already decided for this person (or unknown face) within the cooldown: no new event.
    Cooldown {
        person: Option<String>,
    },
}

impl Verdict {
    /// `true` for the verdicts that are events (logged, shown, possibly actuated).
    pub fn is_event(&self) -> bool {
        matches!(
            self,
            Verdict::Granted { .. } | Verdict::Denied { .. } | Verdict::Unknown { .. }
        )
    }
}

/// What the policy wants after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The verdict for this frame (no decision needed).
    Verdict(Verdict),
    /// The track has enough frames: decide on this fused, normalised embedding, then call
    /// [`Policy::conclude`].
    Decide(Vec<f32>),
}

pub struct Policy {
    config: PolicyConfig,
    /// Sum of the track's normalised embeddings, and its frame count.
    track: Option<(Vec<f32>, u32)>,
    last_event: HashMap<Option<String>, i64>,
    entered: HashMap<String, i64>,
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter().map(|x| x / n).collect()
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Policy {
        Policy {
            config,
            track: None,
            last_event: HashMap::new(),
            entered: HashMap::new(),
        }
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.config
    }

    /// An exit was recorded for the person (clears anti-passback).
    pub fn note_exit(&mut self, person: &str) {
        self.entered.remove(person);
    }

    /// Feed one frame.
    pub fn observe(&mut self, seen: &Seen) -> Step {
        let e = match seen {
            Seen::NoFace => {
                self.track = None;
                return Step::Verdict(Verdict::Idle);
            }
            Seen::Unusable => return Step::Verdict(Verdict::Looking),
            Seen::Face(e) => unit(e),
        };
        let same = self.track.as_ref().is_some_and(|(sum, _)| {
            let mean = unit(sum);
            mean.iter().zip(&e).map(|(a, b)| a * b).sum::<f32>() >= self.config.same_face
        });
        match &mut self.track {
            Some((sum, n)) if same => {
                sum.iter_mut().zip(&e).for_each(|(a, b)| *a += b);
                *n += 1;
            }
            _ => self.track = Some((e, 1)),
        }
        match &self.track {
            Some((sum, n)) if *n >= self.config.frames.max(1) => {
                let fused = unit(sum);
                self.track = None;
                Step::Decide(fused)
            }
            _ => Step::Verdict(Verdict::Looking),
        }
    }

    /// The key of the cooldown: the person, or `None` for a face nobody was recognised as.
    fn key(decision: &Decision) -> Option<String> {
        match decision {
            Decision::Granted { person, .. } => Some(person.clone()),
            Decision::Refused { person, reason, .. } if reason.recognised() => person.clone(),
            Decision::Refused { .. } => None,
        }
    }

    /// Whether [`Policy::conclude`] would answer [`Verdict::Cooldown`] (no new event) for
    /// `decision` at `now_ms` (the door asks no liveness challenge then).
    pub fn in_cooldown(&self, decision: &Decision, now_ms: i64) -> bool {
        self.last_event
            .get(&Self::key(decision))
            .is_some_and(|&t| now_ms - t < self.config.cooldown_ms as i64)
    }

    /// The verdict for the decision core's `decision` on a fused track at `now_ms`: one event
    /// per visit (cooldown), then anti-passback.
    pub fn conclude(&mut self, decision: Decision, now_ms: i64) -> Verdict {
        let key = Self::key(&decision);
        if self.in_cooldown(&decision, now_ms) {
            return Verdict::Cooldown { person: key };
        }
        self.last_event.insert(key, now_ms);
        match decision {
            Decision::Refused {
                person,
                score,
                reason,
            } => {
                let score = score.unwrap_or(-1.0);
                if reason.recognised() {
                    Verdict::Denied {
                        person,
                        score,
                        reason,
                    }
                } else {
                    Verdict::Unknown { score, reason }
                }
            }
            Decision::Granted { person, score } => {
                if self.config.anti_passback_ms > 0
                    && let Some(&t) = self.entered.get(&person)
                    && now_ms - t < self.config.anti_passback_ms as i64
                {
                    return Verdict::Denied {
                        person: Some(person),
                        score,
                        reason: Refusal::AntiPassback,
                    };
                }
                self.entered.insert(person.clone(), now_ms);
                Verdict::Granted { person, score }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(frames: u32, anti_passback_ms: u64) -> Policy {
        Policy::new(PolicyConfig {
            frames,
            same_face: 0.41,
            cooldown_ms: 5000,
            anti_passback_ms,
        })
    }

    fn face(a: f32, b: f32) -> Seen {
        Seen::Face(vec![a, b, 0.0])
    }

    fn granted(p: &str) -> Decision {
        Decision::Granted {
            person: p.into(),
            score: 0.9,
        }
    }

    #[test]
    fn fuses_a_track_of_frames_into_one_decision() {
        let mut pol = policy(3, 0);
        assert_eq!(
            pol.observe(&face(1.0, 0.1)),
            Step::Verdict(Verdict::Looking)
        );
        // An unusable frame neither ends nor extends the track.
        assert_eq!(
            pol.observe(&Seen::Unusable),
            Step::Verdict(Verdict::Looking)
        );
        assert_eq!(
            pol.observe(&face(1.0, -0.1)),
            Step::Verdict(Verdict::Looking)
        );
        let Step::Decide(fused) = pol.observe(&face(2.0, 0.0)) else {
            panic!("no decision after three frames")
        };
        // Mean of the normalised embeddings: along the first axis, unit length.
        assert!(
            (fused[0] - 1.0).abs() < 1e-4 && fused[1].abs() < 1e-4,
            "{fused:?}"
        );
        // No face ends the track: two more frames are not enough.
        assert_eq!(
            pol.observe(&face(1.0, 0.0)),
            Step::Verdict(Verdict::Looking)
        );
        assert_eq!(pol.observe(&Seen::NoFace), Step::Verdict(Verdict::Idle));
        assert_eq!(
            pol.observe(&face(1.0, 0.0)),
            Step::Verdict(Verdict::Looking)
        );
        assert_eq!(
            pol.observe(&face(1.0, 0.0)),
            Step::Verdict(Verdict::Looking)
        );
        // A different face starts a new track.
        assert_eq!(
            pol.observe(&face(0.0, 1.0)),
            Step::Verdict(Verdict::Looking)
        );
        assert_eq!(
            pol.observe(&face(0.0, 1.0)),
            Step::Verdict(Verdict::Looking)
        );
        assert!(matches!(pol.observe(&face(0.0, 1.0)), Step::Decide(_)));
    }

    #[test]
    fn one_event_per_visit_and_unknown_faces() {
        let mut pol = policy(1, 0);
        let v = pol.conclude(granted("alice"), 0);
        assert!(matches!(v, Verdict::Granted { .. }));
        for t in 1..5 {
            let v = pol.conclude(granted("alice"), t * 1000);
            assert!(!v.is_event(), "{v:?}");
        }
        let stranger = || Decision::Refused {
            person: None,
            score: Some(0.3),
            reason: Refusal::BelowThreshold {
                score: 0.3,
                threshold: 0.6,
            },
        };
        assert!(matches!(
            pol.conclude(stranger(), 0),
            Verdict::Unknown { score, .. } if score == 0.3
        ));
        assert!(!pol.conclude(stranger(), 100).is_event());
    }

    #[test]
    fn refusals_keep_their_reason_and_anti_passback() {
        let mut pol = policy(1, 60_000);
        let v = pol.conclude(
            Decision::Refused {
                person: Some("alice".into()),
                score: Some(0.9),
                reason: Refusal::Offline {
                    detail: "offline too long".into(),
                },
            },
            0,
        );
        assert!(
            matches!(v, Verdict::Denied { reason: Refusal::Offline { detail: ref w }, .. } if w == "offline too long")
        );
        let v = pol.conclude(granted("alice"), 10_000);
        assert!(matches!(v, Verdict::Granted { .. }));
        let v = pol.conclude(granted("alice"), 20_000);
        assert!(
            matches!(
                v,
                Verdict::Denied {
                    reason: Refusal::AntiPassback,
                    ..
                }
            ),
            "{v:?}"
        );
        pol.note_exit("alice");
        let v = pol.conclude(granted("alice"), 30_000);
        assert!(matches!(v, Verdict::Granted { .. }));
    }
}
