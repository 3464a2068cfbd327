//! The decision policy: from what each frame shows to grant, deny, unknown or keep looking.
//!
//! A decision needs `frames` consecutive frames that agree: the same person at or above the
//! accept threshold, or a face under the reject threshold ("unknown"). A frame in between, a
//! frame without a face or a frame with another person breaks the run. One visit is one event:
//! after a decision about a person (or about an unknown face) the same decision is not repeated
//! for `cooldown_ms`. Optional anti-passback: a person granted once is refused for
//! `anti_passback_ms` unless an exit was recorded for them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::rules::{self, LocalTime};
use crate::gallery::Person;

/// The `[access]` settings the policy uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// Cosine similarity at or above which a face is taken to be the person.
    pub accept: f32,
    /// Under this, a face is nobody enrolled.
    pub reject: f32,
    /// Consecutive agreeing frames needed for a decision.
    pub frames: u32,
    pub cooldown_ms: u64,
    /// 0 = off.
    pub anti_passback_ms: u64,
}

/// What the best face of one frame looks like to the gallery.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    NoFace,
    /// The best candidate (if any) and its score.
    Face {
        person: Option<String>,
        score: f32,
    },
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
    /// Recognised (or cut off from the central gallery) but refused; `reason` says why.
    Denied {
        person: Option<String>,
        score: f32,
        reason: String,
    },
    /// A face that is nobody enrolled.
    Unknown {
        score: f32,
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

#[derive(Debug, Clone, PartialEq)]
enum Who {
    Person(String),
    Unknown,
}

pub struct Policy {
    config: PolicyConfig,
    run: Option<(Who, u32, f32)>,
    last_event: HashMap<Option<String>, i64>,
    entered: HashMap<String, i64>,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Policy {
        Policy {
            config,
            run: None,
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

    /// Feed one frame. `record` is the gallery's record of the candidate person (if any);
    /// `refuse` is set when the gallery says nobody may be admitted (offline too long).
    pub fn observe(
        &mut self,
        seen: &Seen,
        record: Option<&Person>,
        refuse: Option<&str>,
        now_ms: i64,
        local: LocalTime,
    ) -> Verdict {
        let (person, score) = match seen {
            Seen::NoFace => {
                self.run = None;
                return Verdict::Idle;
            }
            Seen::Face { person, score } => (person, *score),
        };
        let who = match person {
            Some(p) if score >= self.config.accept => Who::Person(p.clone()),
            _ if score < self.config.reject => Who::Unknown,
            _ => {
                self.run = None;
                return Verdict::Looking;
            }
        };
        let count = match &mut self.run {
            Some((w, n, best)) if *w == who => {
                *n += 1;
                *best = best.max(score);
                *n
            }
            _ => {
                self.run = Some((who.clone(), 1, score));
                1
            }
        };
        if count < self.config.frames.max(1) {
            return Verdict::Looking;
        }
        let best = self.run.take().map_or(score, |r| r.2);
        let key = match &who {
            Who::Person(p) => Some(p.clone()),
            Who::Unknown => None,
        };
        if let Some(&t) = self.last_event.get(&key)
            && now_ms - t < self.config.cooldown_ms as i64
        {
            return Verdict::Cooldown { person: key };
        }
        self.last_event.insert(key, now_ms);
        let person = match who {
            Who::Unknown => return Verdict::Unknown { score: best },
            Who::Person(p) => p,
        };
        let deny = |reason: String| Verdict::Denied {
            person: Some(person.clone()),
            score: best,
            reason,
        };
        if let Some(r) = refuse {
            return deny(r.to_owned());
        }
        let Some(record) = record else {
            return deny("no record of this person on this door".into());
        };
        if let Err(r) = rules::check(record, now_ms, local) {
            return deny(r.to_string());
        }
        if self.config.anti_passback_ms > 0
            && let Some(&t) = self.entered.get(&person)
            && now_ms - t < self.config.anti_passback_ms as i64
        {
            return deny("anti-passback: entered already, no exit recorded".into());
        }
        self.entered.insert(person.clone(), now_ms);
        Verdict::Granted {
            person,
            score: best,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::NewPerson;

    const T: LocalTime = LocalTime {
        weekday: 0,
        minute: 600,
    };

    fn policy(frames: u32, anti_passback_ms: u64) -> Policy {
        Policy::new(PolicyConfig {
            accept: 0.41,
            reject: 0.30,
            frames,
            cooldown_ms: 5000,
            anti_passback_ms,
        })
    }

    fn alice() -> Person {
        Person::from_new(
            "alice".into(),
            NewPerson {
                name: "Alice".into(),
                ..NewPerson::default()
            },
            0,
        )
        .unwrap()
    }

    fn face(p: &str, s: f32) -> Seen {
        Seen::Face {
            person: Some(p.into()),
            score: s,
        }
    }

    #[test]
    fn needs_consecutive_agreeing_frames() {
        let mut pol = policy(3, 0);
        let a = alice();
        let r = Some(&a);
        assert_eq!(
            pol.observe(&face("alice", 0.8), r, None, 0, T),
            Verdict::Looking
        );
        assert_eq!(
            pol.observe(&face("alice", 0.8), r, None, 1, T),
            Verdict::Looking
        );
        // A frame between the thresholds breaks the run.
        assert_eq!(
            pol.observe(&face("alice", 0.35), r, None, 2, T),
            Verdict::Looking
        );
        assert_eq!(
            pol.observe(&face("alice", 0.7), r, None, 3, T),
            Verdict::Looking
        );
        assert_eq!(
            pol.observe(&face("alice", 0.9), r, None, 4, T),
            Verdict::Looking
        );
        assert_eq!(
            pol.observe(&face("alice", 0.8), r, None, 5, T),
            Verdict::Granted {
                person: "alice".into(),
                score: 0.9
            }
        );
        // One visit, one event.
        for t in 6..20 {
            let v = pol.observe(&face("alice", 0.8), r, None, t, T);
            assert!(!v.is_event(), "{v:?}");
        }
    }

    #[test]
    fn unknown_faces_and_no_face() {
        let mut pol = policy(2, 0);
        assert_eq!(
            pol.observe(&face("bob", 0.1), None, None, 0, T),
            Verdict::Looking
        );
        assert_eq!(pol.observe(&Seen::NoFace, None, None, 1, T), Verdict::Idle);
        assert_eq!(
            pol.observe(&face("bob", 0.1), None, None, 2, T),
            Verdict::Looking
        );
        assert_eq!(
            pol.observe(&face("bob", 0.2), None, None, 3, T),
            Verdict::Unknown { score: 0.2 }
        );
    }

    #[test]
    fn rules_offline_refusal_and_anti_passback() {
        let mut pol = policy(1, 60_000);
        let mut a = alice();
        a.enabled = false;
        let v = pol.observe(&face("alice", 0.9), Some(&a), None, 0, T);
        assert!(
            matches!(v, Verdict::Denied { ref reason, .. } if reason == "person is disabled"),
            "{v:?}"
        );
        a.enabled = true;
        let v = pol.observe(
            &face("alice", 0.9),
            Some(&a),
            Some("offline too long"),
            10_000,
            T,
        );
        assert!(matches!(v, Verdict::Denied { ref reason, .. } if reason == "offline too long"));
        let v = pol.observe(&face("alice", 0.9), Some(&a), None, 20_000, T);
        assert!(matches!(v, Verdict::Granted { .. }));
        let v = pol.observe(&face("alice", 0.9), Some(&a), None, 30_000, T);
        assert!(
            matches!(v, Verdict::Denied { ref reason, .. } if reason.contains("anti-passback"))
        );
        pol.note_exit("alice");
        let v = pol.observe(&face("alice", 0.9), Some(&a), None, 40_000, T);
        assert!(matches!(v, Verdict::Granted { .. }));
        // A recognised face whose record is missing is refused, not admitted.
        let v = pol.observe(&face("ghost", 0.9), None, None, 50_000, T);
        assert!(matches!(v, Verdict::Denied { .. }));
    }
}
