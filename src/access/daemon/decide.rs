//! The recognition workers (vision on the newest frame) and the decision thread (the policy over
//! their looks, then the door, the display, Wiegand and the records).

use super::*;
use crate::access::decision::Refusal;
use crate::vision::Point;
use crate::vision::liveness::challenge::{self, Side, TurnCheck};

/// What a recognition worker saw in one frame.
pub(super) struct Looked {
    pub(super) seq: u64,
    pub(super) captured: Instant,
    pub(super) look: Result<Look, String>,
}

/// What the largest face in a frame shows.
pub(super) struct Look {
    pub(super) seen: Seen,
    pub(super) quality: Option<Quality>,
    /// The aligned crop, kept only when crops are saved.
    pub(super) crop: Option<image::RgbImage>,
    /// The face's liveness evidence (when a liveness model is loaded).
    pub(super) liveness: Option<FrameEvidence>,
    /// Faces found, the largest one's box and why it is unusable (for the camera view).
    pub(super) faces: usize,
    pub(super) face: Option<crate::vision::BBox>,
    pub(super) refusal: Option<String>,
    /// The face's 68 landmarks (when the head-turn challenge is on).
    pub(super) landmarks: Option<Vec<Point>>,
    /// What the infrared frame nearest in time says about the face (infrared check on).
    pub(super) ir: Option<IrOutcome>,
}

/// A recognition worker: vision on one frame at a time.
pub(super) struct Worker {
    pub(super) pipeline: Pipeline,
    pub(super) save_crops: bool,
    /// Shared by the workers: which faces need embedding ([`Tracker`]).
    pub(super) tracker: Arc<Mutex<Tracker>>,
    /// A frame whose face the tracker follows is not looked at closer (no closer look, no
    /// embedder). Only when the door does not check liveness: the liveness stage runs on every
    /// frame's face with the closer look's landmarks.
    pub(super) coarse_when_tracked: bool,
    /// The infrared camera's newest frames and the check's settings (infrared check on).
    pub(super) ir: Option<(RecentFrames, IrParams)>,
}

impl Worker {
    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Look at frame `seq` (captured at `captured`): detect, align, and embed the largest face
    /// unless the tracker has its embedding from an earlier frame of the same visit.
    pub(super) fn look(
        &mut self,
        img: &image::RgbImage,
        seq: u64,
        captured: Instant,
    ) -> Result<Look, String> {
        let coarse = self
            .pipeline
            .detect_coarse(img)
            .map_err(|e| e.to_string())?;
        if self.coarse_when_tracked
            && let Some(look) = self.tracked_coarse(img, &coarse, seq, captured)
        {
            return Ok(look);
        }
        let dets = self
            .pipeline
            .refine(img, coarse)
            .map_err(|e| e.to_string())?;
        let Some(det) = dets.first() else {
            self.tracker().lost(seq);
            return Ok(Look {
                seen: Seen::NoFace,
                quality: None,
                crop: None,
                liveness: None,
                faces: 0,
                face: None,
                refusal: None,
                landmarks: None,
                ir: None,
            });
        };
        let aligned = self.pipeline.align_face(img, det);
        let refusal = aligned.usable.as_ref().err().map(|r| r.to_string());
        let seen = match aligned.usable {
            // A face too turned or too small to judge.
            Err(_) => {
                self.tracker().lost(seq);
                Seen::Unusable
            }
            Ok(()) => {
                let plan = self
                    .tracker()
                    .plan(seq, captured, &det.bbox, &aligned.quality);
                match plan {
                    Plan::Reuse(e) => Seen::Face(e),
                    Plan::Embed => {
                        let e = self
                            .pipeline
                            .embed_crop(&aligned.crop)
                            .map_err(|e| e.to_string())?;
                        self.tracker().embedded(seq, &e.0, &aligned.quality);
                        Seen::Face(e.0)
                    }
                }
            }
        };
        let liveness = match &seen {
            Seen::Face(_) => match self.pipeline.liveness(img, det) {
                None => None,
                Some(Ok(e)) => Some(e),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "liveness not measured");
                    None
                }
            },
            _ => None,
        };
        // The challenge reads every detected face, also one too turned to embed.
        let landmarks = match self.pipeline.landmarks(img, det) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "landmarks not measured");
                None
            }
        };
        let ir = match (&seen, &self.ir) {
            (Seen::Face(_), Some((recent, params))) => {
                // The infrared frame nearest in time (waiting, up to the skew allowed, for
                // one taken at or after the colour frame).
                let ir_frame = recent.nearest_waiting(captured, params.max_skew);
                let frame = ir_frame.as_ref().map(|(f, skew)| (f.image.as_ref(), *skew));
                let pipeline = &mut self.pipeline;
                match liveness::ir::check(params, &det.bbox, frame, |i| pipeline.detect(i)) {
                    Ok(o) => Some(o),
                    Err(e) => {
                        tracing::warn!(error = %e, "infrared frame not looked at");
                        None
                    }
                }
            }
            _ => None,
        };
        Ok(Look {
            seen,
            quality: Some(aligned.quality),
            crop: self.save_crops.then_some(aligned.crop),
            liveness,
            faces: dets.len(),
            face: Some(det.bbox),
            refusal,
            landmarks,
            ir,
        })
    }

    /// The look at a frame whose largest face, in the whole-frame view, continues the track and
    /// is not seen better: the track's embedding, without the closer look (half of the
    /// detector's work) or the embedder. `None`: look closer (a new face, a better view, a
    /// refresh, or a face the limits refuse).
    fn tracked_coarse(
        &mut self,
        img: &image::RgbImage,
        coarse: &[crate::vision::Detection],
        seq: u64,
        captured: Instant,
    ) -> Option<Look> {
        let min = self.pipeline.params.detect.min_face_px;
        let face = coarse
            .iter()
            .filter(|f| f.bbox.w >= min)
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))?;
        let aligned = self.pipeline.align_face(img, face);
        aligned.usable.as_ref().ok()?;
        let e = self
            .tracker()
            .reuse(seq, captured, &face.bbox, &aligned.quality)?;
        Some(Look {
            seen: Seen::Face(e),
            quality: Some(aligned.quality),
            crop: self.save_crops.then_some(aligned.crop),
            liveness: None,
            faces: coarse.len(),
            face: Some(face.bbox),
            refusal: None,
            landmarks: None,
            ir: None,
        })
    }
}

/// The decision thread: the policy over the workers' looks, in frame order, then the door,
/// the display, Wiegand and the audit records.
pub(super) struct Decider {
    /// The door's liveness mode and the current visit's frames (`None`: liveness off).
    pub(super) liveness: Option<(Mode, Visit)>,
    /// The infrared check's mode and the current visit's outcomes (`None`: no infrared camera).
    pub(super) ir: Option<(Mode, IrVisit)>,
    pub(super) policy: Policy,
    pub(super) display: Box<dyn StatusDisplay>,
    pub(super) wiegand: Option<Box<dyn CardOutput>>,
    pub(super) shown: Option<Screen>,
    pub(super) hold_until: Option<Instant>,
    pub(super) hold_ms: u64,
    /// The newest frame decided on: a worker that finishes an older frame after a newer one
    /// was decided is too late, and its look is dropped (the newest frame wins).
    pub(super) last_seq: u64,
    /// The camera reports it is lost (set by the loop before each frame).
    pub(super) camera_lost: bool,
    /// Searched with the fused face of a visit; also asked (without a network call) whether
    /// the central store is reachable.
    pub(super) gallery: Arc<dyn Gallery>,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) top_k: usize,
    pub(super) operating: Arc<OperatingPoint>,
    /// How long the head-turn challenge waits (`None`: challenge off).
    pub(super) challenge: Option<Duration>,
    /// A visit waiting for its head turn.
    pub(super) pending: Option<Pending>,
}

/// A visit that would be admitted, waiting for the head turn the display asks for.
pub(super) struct Pending {
    check: TurnCheck,
    /// The decision to conclude with when the turn is seen.
    decision: Decision,
    record: Option<crate::gallery::Person>,
    /// The visit's fused face: a usable face during the turn must be the same person.
    face: Vec<f32>,
    deadline: Instant,
}

impl Decider {
    /// Show a screen (unless a decision screen is being held, or `force`).
    pub(super) fn show(&mut self, screen: Screen, hold: bool) {
        let now = Instant::now();
        if !hold && self.hold_until.is_some_and(|t| now < t) {
            return;
        }
        self.hold_until = hold.then(|| now + Duration::from_millis(self.hold_ms));
        if self.shown.as_ref() == Some(&screen) {
            return;
        }
        if let Err(e) = self.display.show(&screen) {
            tracing::warn!(error = %e, "display");
        }
        self.shown = Some(screen);
    }

    /// The screen when nobody is being decided about: camera lost first, then offline (the
    /// gallery's central store is unreachable; the door still decides from its cache), else idle.
    pub(super) fn resting_screen(&self) -> Screen {
        resting_screen(self.camera_lost, || self.gallery.online())
    }

    pub(super) fn idle(&mut self) {
        let screen = self.resting_screen();
        self.show(screen, false);
    }

    pub(super) fn decide(
        &mut self,
        looked: Looked,
        door: &mpsc::Sender<(DoorInput, Option<Instant>)>,
        records: &mpsc::Sender<Record>,
    ) {
        let Looked {
            seq,
            captured,
            look,
        } = looked;
        if seq <= self.last_seq {
            tracing::trace!(frame = seq, newest = self.last_seq, "late look dropped");
            return;
        }
        self.last_seq = seq;
        let now = now_ms();
        let Look {
            seen,
            quality,
            crop,
            liveness: evidence,
            landmarks,
            ir,
            ..
        } = match look {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, frame = seq, "frame skipped");
                return;
            }
        };
        let (live_score, live_refuse) = self.liveness_of_visit(&seen, evidence);
        let ir_refuse = self.ir_of_visit(&seen, ir);
        let live_refuse = match (live_refuse, ir_refuse) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        let frame = Noted {
            seq,
            captured,
            quality,
            crop,
            live_score,
        };
        if self.pending.is_some() {
            self.challenge_frame(&seen, landmarks.as_deref(), frame, now, door, records);
            return;
        }
        let (verdict, record) = match self.policy.observe(&seen) {
            Step::Verdict(v) => (v, None),
            Step::Decide(fused) => match self.decide_visit(&fused, now) {
                Ok((decision, record)) => {
                    let decision = decision::unless_live(decision, live_refuse);
                    if let Some(wait) = self.challenge
                        && matches!(decision, Decision::Granted { .. })
                        && !self.policy.in_cooldown(&decision, now)
                    {
                        self.ask_turn(decision, record, fused, landmarks, captured + wait);
                        return;
                    }
                    (self.policy.conclude(decision, now), record)
                }
                Err(e) => {
                    tracing::warn!(error = %e, frame = seq, "gallery: visit not decided");
                    return;
                }
            },
        };
        self.emit(verdict, record, frame, now, door, records);
    }

    /// Show, actuate and record a verdict.
    fn emit(
        &mut self,
        verdict: Verdict,
        record: Option<crate::gallery::Person>,
        frame: Noted,
        now: i64,
        door: &mpsc::Sender<(DoorInput, Option<Instant>)>,
        records: &mpsc::Sender<Record>,
    ) {
        let Noted {
            seq,
            captured,
            quality,
            crop,
            live_score,
        } = frame;
        match &verdict {
            Verdict::Idle => self.idle(),
            Verdict::Looking | Verdict::Cooldown { .. } => self.show(Screen::Looking, false),
            Verdict::Granted { person, .. } => {
                let _ = door.send((
                    DoorInput::Unlock(UnlockBy::Face {
                        person: person.clone(),
                    }),
                    Some(captured),
                ));
                let name = record.as_ref().map_or(person.clone(), |p| p.name.clone());
                self.show(Screen::Granted { name }, true);
                if let (Some(w), Some(card)) = (
                    self.wiegand.as_mut(),
                    record
                        .as_ref()
                        .and_then(|p| p.external_id.as_ref())
                        .and_then(|c| c.parse::<u64>().ok()),
                ) && let Err(e) = w.send_card(crate::hw::CardNumber::Raw(card))
                {
                    tracing::warn!(error = %e, "wiegand");
                }
            }
            Verdict::Denied { reason, .. } => {
                self.show(
                    Screen::Denied {
                        reason: reason.to_string(),
                    },
                    true,
                );
            }
            Verdict::Unknown { .. } => self.show(
                Screen::Denied {
                    reason: "Not recognised".into(),
                },
                true,
            ),
        }
        if verdict.is_event() {
            match &verdict {
                Verdict::Granted { person, score } => {
                    tracing::info!(person = %person, score, "granted")
                }
                Verdict::Denied { person, reason, .. } => {
                    tracing::info!(person = ?person, reason = %reason, "denied")
                }
                Verdict::Unknown { reason, .. } => {
                    tracing::info!(reason = reason.code(), "unknown face")
                }
                _ => {}
            }
            let _ = records.send(Record::Decision {
                at_ms: now,
                verdict,
                quality,
                latency_ms: captured.elapsed().as_secs_f64() * 1000.0,
                frame: seq,
                liveness: live_score,
                face: crop,
            });
            // The next decision is about a new visit: its liveness evidence starts afresh.
            if let Some((_, visit)) = self.liveness.as_mut() {
                visit.reset();
            }
            if let Some((_, visit)) = self.ir.as_mut() {
                visit.reset();
            }
        }
    }
}

/// What the decision thread keeps of one frame for its record.
pub(super) struct Noted {
    seq: u64,
    captured: Instant,
    quality: Option<Quality>,
    crop: Option<image::RgbImage>,
    live_score: Option<VisitScore>,
}

impl Decider {
    /// A visit would be admitted: ask for a head turn to a random side and wait for it.
    fn ask_turn(
        &mut self,
        decision: Decision,
        record: Option<crate::gallery::Person>,
        face: Vec<f32>,
        landmarks: Option<Vec<Point>>,
        deadline: Instant,
    ) {
        let side = Side::random();
        tracing::info!(side = side.as_str(), "head turn asked");
        self.pending = Some(Pending {
            check: TurnCheck::new(side, challenge::TURN, landmarks),
            decision,
            record,
            face,
            deadline,
        });
        self.show(
            Screen::TurnHead {
                left: side == Side::Left,
            },
            true,
        );
    }

    /// A frame while a head turn is awaited: admit once it is seen, refuse when the time is
    /// up or another face shows up; else keep asking.
    fn challenge_frame(
        &mut self,
        seen: &Seen,
        landmarks: Option<&[Point]>,
        frame: Noted,
        now: i64,
        door: &mpsc::Sender<(DoorInput, Option<Instant>)>,
        records: &mpsc::Sender<Record>,
    ) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let same_face = self.policy.config().same_face;
        let other = match seen {
            Seen::Face(e) => cosine(e, &p.face) < same_face,
            _ => false,
        };
        let passed = !other && landmarks.is_some_and(|l| p.check.frame(l));
        let failure = if other {
            Some(challenge::Failure::OtherFace)
        } else if !passed && frame.captured >= p.deadline {
            Some(p.check.failure())
        } else {
            None
        };
        if !passed && failure.is_none() {
            let left = p.check.side == Side::Left;
            self.show(Screen::TurnHead { left }, false);
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        let best = p.check.best.unwrap_or_default();
        let decision = match failure {
            None => {
                tracing::info!(
                    side = p.check.side.as_str(),
                    turn = best.turn,
                    parallax = best.parallax,
                    "head turn seen"
                );
                p.decision
            }
            Some(f) => {
                tracing::info!(
                    side = p.check.side.as_str(),
                    turn = best.turn,
                    moved = best.moved,
                    parallax = best.parallax,
                    reason = f.reason(),
                    "head turn challenge failed"
                );
                refuse_challenge(p.decision, f)
            }
        };
        let verdict = self.policy.conclude(decision, now);
        self.emit(verdict, p.record, frame, now, door, records);
    }

    /// No frame came for a while: a head turn awaited past its time is refused now.
    pub(super) fn expire_challenge(
        &mut self,
        door: &mpsc::Sender<(DoorInput, Option<Instant>)>,
        records: &mpsc::Sender<Record>,
    ) {
        let late = self
            .pending
            .as_ref()
            .is_some_and(|p| Instant::now() >= p.deadline);
        if !late {
            return;
        }
        let Some(p) = self.pending.take() else {
            return;
        };
        let f = p.check.failure();
        tracing::info!(
            side = p.check.side.as_str(),
            reason = f.reason(),
            "head turn challenge failed"
        );
        let now = now_ms();
        let verdict = self.policy.conclude(refuse_challenge(p.decision, f), now);
        let frame = Noted {
            seq: self.last_seq,
            captured: p.deadline,
            quality: None,
            crop: None,
            live_score: None,
        };
        self.emit(verdict, p.record, frame, now, door, records);
    }
}

impl Decider {
    /// The camera has no more frames: wait for a pending challenge's time to run out (or a
    /// stop), then refuse it.
    pub(super) fn finish_challenge(
        &mut self,
        stop: &AtomicBool,
        door: &mpsc::Sender<(DoorInput, Option<Instant>)>,
        records: &mpsc::Sender<Record>,
    ) {
        while let Some(p) = &self.pending {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let left = p.deadline.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_millis(100)));
            self.expire_challenge(door, records);
        }
    }
}

/// The held decision turned into the challenge's refusal.
fn refuse_challenge(decision: Decision, f: challenge::Failure) -> Decision {
    let reason = Refusal::Challenge {
        detail: f.reason().to_owned(),
    };
    match decision {
        Decision::Granted { person, score } => Decision::Refused {
            person: Some(person),
            score: Some(score),
            reason,
        },
        Decision::Refused { person, score, .. } => Decision::Refused {
            person,
            score,
            reason,
        },
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (n(a) * n(b))
}

impl Decider {
    /// The decision core on the fused face of one visit ([`crate::access::probe::observe`], as the
    /// API's identify): search the gallery, look up the best person's record when
    /// recognised, decide.
    pub(super) fn decide_visit(
        &self,
        fused: &[f32],
        now: i64,
    ) -> Result<(Decision, Option<crate::gallery::Person>), crate::gallery::GalleryError> {
        let rule = self.operating.rule();
        let seen = self.rt.block_on(crate::access::probe::observe(
            self.gallery.as_ref(),
            fused,
            self.top_k,
            &rule,
            now,
        ))?;
        Ok((seen.decision, seen.record))
    }

    /// Add this frame's liveness evidence to the visit; the visit's score and, when the door
    /// enforces liveness and the visit is not live, the refusal reason.
    pub(super) fn liveness_of_visit(
        &mut self,
        seen: &Seen,
        evidence: Option<FrameEvidence>,
    ) -> (Option<VisitScore>, Option<String>) {
        let Some((mode, visit)) = self.liveness.as_mut() else {
            return (None, None);
        };
        // A visit's evidence runs from the first face to the decision (or until no face).
        if matches!(seen, Seen::NoFace) {
            visit.reset();
            return (None, None);
        }
        if let Some(e) = evidence {
            visit.push(e);
        }
        let score = visit.score();
        if let Some(s) = score.filter(|s| !s.live) {
            tracing::debug!(score = s.score, frames = s.frames, "visit not live so far");
        }
        (score, liveness::refusal(*mode, score.as_ref()))
    }
}

impl Decider {
    /// Add this frame's infrared outcome to the visit; when the door enforces the infrared
    /// check and the visit fails it, the refusal's detail ("face dark in infrared"...).
    pub(super) fn ir_of_visit(
        &mut self,
        seen: &Seen,
        outcome: Option<IrOutcome>,
    ) -> Option<String> {
        let (mode, visit) = self.ir.as_mut()?;
        if matches!(seen, Seen::NoFace) {
            visit.reset();
            return None;
        }
        if let Some(o) = outcome {
            if !o.passed() {
                tracing::debug!(outcome = ?o, "face not seen in infrared in this frame");
            }
            visit.push(o);
        }
        if !matches!(seen, Seen::Face(_)) {
            return None;
        }
        let failure = visit.failure();
        if let Some(f) = failure
            && *mode == Mode::Warn
        {
            tracing::debug!(outcome = ?f, frames = visit.len(), "visit not seen in infrared (warn only)");
        }
        visit.refusal(*mode)
    }
}

/// The screen when nobody is being decided about: a lost camera first, then an unreachable
/// central gallery (`online` is only asked when the camera is fine), else idle.
pub(super) fn resting_screen(camera_lost: bool, online: impl FnOnce() -> Option<bool>) -> Screen {
    if camera_lost {
        Screen::CameraLost
    } else if online() == Some(false) {
        Screen::Offline
    } else {
        Screen::Idle
    }
}
