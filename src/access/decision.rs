//! The one decision core: from the gallery's candidates for one observation (a photo sent to
//! `POST /v1/identify`, or the fused frames of one visit at the door) to a typed outcome,
//! granted or refused with a typed reason. The HTTP API and the door both call [`decide`]; the
//! door's multi-frame policy ([`super::policy`]) sits on top of it.
//!
//! The rule in force is an [`OperatingPoint`]: a target false-positive identification rate
//! (FPIR), the embedder's calibration (its impostor score tail, from the model card) and the
//! gallery's current size give the cosine threshold ([`super::calibration`]); a margin rule asks
//! the best person to beat the second-best other person by `margin`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::calibration::{Calibration, ProbeKind};
use super::rules::{self, LocalTime};
use crate::gallery::{Match, Person};

/// Why a face was not admitted.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Nobody enrolled scores at the threshold: a stranger, or not recognised.
    #[error("not recognised (best score {score:.3} below the threshold {threshold:.3})")]
    BelowThreshold { score: f32, threshold: f32 },
    /// The gallery is empty.
    #[error("nobody is enrolled")]
    NoCandidate,
    /// The best and second-best persons are too close to tell apart.
    #[error(
        "ambiguous: best score {best:.3}, another person {second:.3} (margin {margin:.3} required)"
    )]
    Ambiguous { best: f32, second: f32, margin: f32 },
    /// The gallery refuses everyone (cut off from the central store too long, `admit_nobody`).
    #[error("{detail}")]
    Offline { detail: String },
    /// Recognised, but the person's record is missing on this door.
    #[error("no record of this person on this door")]
    NoRecord,
    /// Recognised, but the person's rules refuse them now.
    #[error("{0}")]
    Rules(rules::Refusal),
    /// Recognised, but entered already with no exit recorded.
    #[error("anti-passback: entered already, no exit recorded")]
    AntiPassback,
    /// The face is not live (a photo or a screen): the liveness check refuses it.
    #[error("not live{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    NotLive { detail: Option<String> },
    /// The liveness challenge at the door (`liveness.challenge`) was not met: "head turn not
    /// seen", "turn looked like a flat picture".
    #[error("{detail}")]
    Challenge { detail: String },
}

impl Refusal {
    /// `true` when the face was recognised as an enrolled person (refused for another reason);
    /// `false` when nobody was recognised.
    pub fn recognised(&self) -> bool {
        !matches!(
            self,
            Refusal::BelowThreshold { .. } | Refusal::NoCandidate | Refusal::Ambiguous { .. }
        )
    }

    /// A short code for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BelowThreshold { .. } => "below_threshold",
            Refusal::NoCandidate => "no_candidate",
            Refusal::Ambiguous { .. } => "ambiguous",
            Refusal::Offline { .. } => "offline",
            Refusal::NoRecord => "no_record",
            Refusal::Rules(_) => "rules",
            Refusal::AntiPassback => "anti_passback",
            Refusal::NotLive { .. } => "not_live",
            Refusal::Challenge { .. } => "challenge_failed",
        }
    }
}

/// The outcome of one observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Granted {
        person: String,
        score: f32,
    },
    Refused {
        /// The recognised person, when there is one.
        person: Option<String>,
        /// The best candidate's score (when there was a candidate).
        score: Option<f32>,
        reason: Refusal,
    },
}

/// A grant turned into a "not live" refusal when the liveness check refuses the face
/// (`not_live` is the refusal's detail); any other decision is kept as it is.
pub fn unless_live(decision: Decision, not_live: Option<String>) -> Decision {
    match (decision, not_live) {
        (Decision::Granted { person, score }, Some(detail)) => Decision::Refused {
            person: Some(person),
            score: Some(score),
            reason: Refusal::NotLive {
                detail: Some(detail),
            },
        },
        (decision, _) => decision,
    }
}

/// The thresholds of one decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rule {
    /// Cosine at or above which the best person is recognised.
    pub threshold: f32,
    /// The best person must beat the second-best other person by at least this (0 = off).
    pub margin: f32,
}

/// Who the candidates show, before the person's record is looked at: the first step of
/// [`decide`], for callers that must fetch the record themselves (asynchronously).
pub fn recognise<'a>(candidates: &'a [Match], rule: &Rule) -> Result<&'a Match, Refusal> {
    let Some(best) = candidates.first() else {
        return Err(Refusal::NoCandidate);
    };
    if best.score.is_nan() || best.score < rule.threshold {
        return Err(Refusal::BelowThreshold {
            score: best.score,
            threshold: rule.threshold,
        });
    }
    if rule.margin > 0.0
        && let Some(second) = candidates.iter().find(|m| m.person != best.person)
        && best.score - second.score < rule.margin
    {
        return Err(Refusal::Ambiguous {
            best: best.score,
            second: second.score,
            margin: rule.margin,
        });
    }
    Ok(best)
}

/// Everything besides the candidates that a decision depends on.
pub struct Context<'a> {
    /// The recognised person's record (looked up by the caller after [`recognise`]).
    pub record: Option<&'a Person>,
    /// Set when the gallery refuses everyone (offline policy), with its reason.
    pub offline: Option<&'a str>,
    pub now_ms: i64,
    pub local: LocalTime,
}

/// The decision for one observation: recognition, then the person's record and rules.
/// Stateful refusals (anti-passback) belong to the door's policy on top.
pub fn decide(candidates: &[Match], rule: &Rule, ctx: &Context) -> Decision {
    let best = match recognise(candidates, rule) {
        Ok(m) => m,
        Err(reason) => {
            return Decision::Refused {
                person: None,
                score: candidates.first().map(|m| m.score),
                reason,
            };
        }
    };
    let refuse = |reason| Decision::Refused {
        person: Some(best.person.clone()),
        score: Some(best.score),
        reason,
    };
    if let Some(why) = ctx.offline {
        return refuse(Refusal::Offline {
            detail: why.to_owned(),
        });
    }
    let Some(record) = ctx.record.filter(|r| r.id == best.person) else {
        return refuse(Refusal::NoRecord);
    };
    if let Err(r) = rules::check(record, ctx.now_ms, ctx.local) {
        return refuse(Refusal::Rules(r));
    }
    Decision::Granted {
        person: best.person.clone(),
        score: best.score,
    }
}

/// How the recognition threshold is set (`[recognition]`).
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdSource {
    /// A fixed cosine (`recognition.threshold`): the same whatever the gallery size.
    Fixed(f32),
    /// Derived from a target FPIR and the embedder's calibration, for the gallery's size.
    Calibrated {
        target_fpir: f64,
        calibration: Box<Calibration>,
    },
}

/// The operating point in force, as shown by `facegate doctor` and `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OperatingState {
    /// `None` for a fixed threshold.
    pub target_fpir: Option<f64>,
    /// FPIR the calibration predicts at this threshold and gallery size.
    pub expected_fpir: Option<f64>,
    pub threshold: f32,
    pub margin: f32,
    /// Templates in the gallery when the threshold was derived.
    pub templates: usize,
    pub probe: ProbeKind,
}

/// The decision rule of one kind of probe, re-derived as the gallery grows. Shared (behind an
/// `Arc`) by every caller; cheap to ask.
pub struct OperatingPoint {
    source: ThresholdSource,
    margin: f32,
    probe: ProbeKind,
    /// Never below this (the model card's 1:1 threshold): a tiny gallery is not an excuse to
    /// accept weak matches.
    floor: f32,
    state: Mutex<(OperatingState, Option<Instant>)>,
    /// Counts the gallery's templates (set by the program that opened the gallery).
    counter: Mutex<Option<TemplateCounter>>,
}

/// Counts the templates in the gallery (cheap: the local cache's in-memory index).
pub type TemplateCounter = Box<dyn Fn() -> usize + Send + Sync>;

/// How often [`OperatingPoint::refresh`] re-derives the threshold at most.
pub const REFRESH_EVERY: Duration = Duration::from_secs(2);

impl OperatingPoint {
    pub fn new(source: ThresholdSource, margin: f32, probe: ProbeKind, floor: f32) -> Self {
        let op = OperatingPoint {
            state: Mutex::new((
                OperatingState {
                    target_fpir: None,
                    expected_fpir: None,
                    threshold: floor,
                    margin,
                    templates: 0,
                    probe,
                },
                None,
            )),
            source,
            margin,
            probe,
            floor,
            counter: Mutex::new(None),
        };
        op.set_templates(1);
        op
    }

    /// A fixed threshold and margin (tests, and `recognition.threshold`).
    pub fn fixed(threshold: f32, margin: f32) -> Self {
        OperatingPoint::new(
            ThresholdSource::Fixed(threshold),
            margin,
            ProbeKind::Image,
            threshold,
        )
    }

    /// The state for a gallery of `templates` templates.
    pub fn state_for(&self, templates: usize) -> OperatingState {
        let (target_fpir, threshold, expected) = match &self.source {
            ThresholdSource::Fixed(t) => (None, *t, None),
            ThresholdSource::Calibrated {
                target_fpir,
                calibration,
            } => {
                let t = calibration
                    .threshold(self.probe, *target_fpir, templates)
                    .max(self.floor);
                let e = calibration.expected_fpir(self.probe, t, templates.max(1));
                (Some(*target_fpir), t, Some(e))
            }
        };
        OperatingState {
            target_fpir,
            expected_fpir: expected,
            threshold,
            margin: self.margin,
            templates,
            probe: self.probe,
        }
    }

    /// Re-derive for a gallery of `templates` templates now.
    pub fn set_templates(&self, templates: usize) {
        let s = self.state_for(templates);
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.threshold != s.threshold {
            tracing::info!(
                threshold = s.threshold,
                templates,
                target_fpir = ?s.target_fpir,
                "recognition threshold derived"
            );
        }
        *g = (s, Some(Instant::now()));
    }

    /// Re-derive from `count()` (the gallery's template count) if the last derivation is older
    /// than [`REFRESH_EVERY`]; `count` is not called otherwise.
    pub fn refresh(&self, count: impl FnOnce() -> usize) {
        let due = {
            let g = self.state.lock().unwrap_or_else(|p| p.into_inner());
            g.1.is_none_or(|t| t.elapsed() >= REFRESH_EVERY)
        };
        if due {
            self.set_templates(count());
        }
    }

    /// Follow the gallery's size: `count` is asked at most every [`REFRESH_EVERY`] (and now).
    pub fn follow(&self, count: TemplateCounter) {
        self.set_templates(count());
        *self.counter.lock().unwrap_or_else(|p| p.into_inner()) = Some(count);
    }

    /// The operating point in force (re-derived first if the gallery is followed and due).
    pub fn state(&self) -> OperatingState {
        {
            let counter = self.counter.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = counter.as_ref() {
                self.refresh(count);
            }
        }
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    pub fn rule(&self) -> Rule {
        let s = self.state();
        Rule {
            threshold: s.threshold,
            margin: s.margin,
        }
    }

    pub fn probe(&self) -> ProbeKind {
        self.probe
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::calibration::Tail;
    use crate::gallery::NewPerson;

    fn m(p: &str, s: f32) -> Match {
        Match {
            person: p.into(),
            template: 1,
            score: s,
        }
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

    fn ctx(record: Option<&Person>) -> Context<'_> {
        Context {
            record,
            offline: None,
            now_ms: 0,
            local: LocalTime {
                weekday: 0,
                minute: 600,
            },
        }
    }

    const RULE: Rule = Rule {
        threshold: 0.6,
        margin: 0.05,
    };

    #[test]
    fn grants_only_a_clear_best_match_with_a_record_and_rules_that_allow() {
        let a = alice();
        let c = [m("alice", 0.8), m("bob", 0.5)];
        assert_eq!(
            decide(&c, &RULE, &ctx(Some(&a))),
            Decision::Granted {
                person: "alice".into(),
                score: 0.8
            }
        );
        // Below the threshold: a stranger, nobody named.
        let d = decide(&[m("alice", 0.59)], &RULE, &ctx(Some(&a)));
        assert!(matches!(
            d,
            Decision::Refused {
                person: None,
                reason: Refusal::BelowThreshold { .. },
                ..
            }
        ));
        // Two people too close to tell apart.
        let d = decide(&[m("alice", 0.70), m("bob", 0.68)], &RULE, &ctx(Some(&a)));
        assert!(
            matches!(
                d,
                Decision::Refused {
                    reason: Refusal::Ambiguous { .. },
                    ..
                }
            ),
            "{d:?}"
        );
        // The margin is against another person, not another template of the same one.
        let d = decide(
            &[m("alice", 0.70), m("alice", 0.69), m("bob", 0.3)],
            &RULE,
            &ctx(Some(&a)),
        );
        assert!(matches!(d, Decision::Granted { .. }), "{d:?}");
        assert_eq!(
            decide(&[], &RULE, &ctx(None)),
            Decision::Refused {
                person: None,
                score: None,
                reason: Refusal::NoCandidate
            }
        );
    }

    #[test]
    fn recognised_but_refused_says_why() {
        let mut a = alice();
        let c = [m("alice", 0.9)];
        let d = decide(&c, &RULE, &ctx(None));
        assert!(matches!(
            d,
            Decision::Refused {
                reason: Refusal::NoRecord,
                ..
            }
        ));
        let mut x = ctx(Some(&a));
        x.offline = Some("offline too long");
        let d = decide(&c, &RULE, &x);
        assert!(
            matches!(d, Decision::Refused { reason: Refusal::Offline { detail: ref w }, .. } if w == "offline too long")
        );
        a.enabled = false;
        let d = decide(&c, &RULE, &ctx(Some(&a)));
        assert!(matches!(
            d,
            Decision::Refused {
                reason: Refusal::Rules(rules::Refusal::Disabled),
                ..
            }
        ));
        // A record of somebody else is no record of the recognised person.
        let mut b = alice();
        b.id = "bob".into();
        let d = decide(&c, &RULE, &ctx(Some(&b)));
        assert!(matches!(
            d,
            Decision::Refused {
                reason: Refusal::NoRecord,
                ..
            }
        ));
        assert!(Refusal::NotLive { detail: None }.recognised());
        assert!(!Refusal::NoCandidate.recognised());
    }

    #[test]
    fn the_threshold_rises_with_the_gallery_and_never_falls_below_the_floor() {
        let cal = Calibration {
            protocol: "test".into(),
            image: Tail {
                fmr: vec![1e-1, 1e-3, 1e-5],
                score: vec![0.2, 0.4, 0.6],
                comparisons: 1_000_000,
                frames: None,
            },
            visit: None,
        };
        let op = OperatingPoint::new(
            ThresholdSource::Calibrated {
                target_fpir: 1e-3,
                calibration: Box::new(cal),
            },
            0.0,
            ProbeKind::Image,
            0.41,
        );
        // One template: FMR 1e-3 is 0.4, under the floor.
        assert!((op.rule().threshold - 0.41).abs() < 1e-6);
        op.set_templates(100);
        let t100 = op.rule().threshold;
        assert!((t100 - 0.6).abs() < 1e-3, "{t100}");
        op.set_templates(1000);
        let s = op.state();
        assert!(s.threshold > t100);
        assert_eq!(s.templates, 1000);
        assert!((s.expected_fpir.unwrap() - 1e-3).abs() < 1e-6);
        // refresh() does not ask for the count again within REFRESH_EVERY.
        op.refresh(|| panic!("asked too soon"));
        // Following a gallery: derived at once from its count.
        op.follow(Box::new(|| 100));
        assert!((op.rule().threshold - t100).abs() < 1e-6);
    }
}
