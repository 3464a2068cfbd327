//! The door loop: camera → vision → gallery → policy → door → relay and display.
//!
//! Three threads: the camera's capture thread (a one-frame mailbox: the newest frame wins,
//! stale frames are dropped), the decision thread (vision and gallery on the newest frame,
//! then the policy), and the door thread (the door state machine: relay timing, door contact,
//! exit button), which reacts to a grant as soon as it is sent. Every decision and door event
//! goes to an [`mpsc::Sender<Record>`] for the audit log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::door::{Door, DoorConfig, DoorEvent, DoorInput, DoorStatus, RelayAction, UnlockBy};
use super::policy::{Policy, PolicyConfig, Seen, Verdict};
use super::rules::LocalTime;
use crate::camera::{CameraError, FrameSource, StatusWatch, spawn_capture};
use crate::gallery::{Gallery, now_ms};
use crate::hw::{CardOutput, DoorRelay, DoorSensors, Hardware, InputEvent, Screen, StatusDisplay};
use crate::vision::{Models, Pipeline, Quality, VisionParams};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("vision: {0}")]
    Vision(#[from] crate::vision::VisionError),
    #[error("camera: {0}")]
    Camera(#[from] CameraError),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

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
    },
    Door {
        at_ms: i64,
        event: DoorEvent,
        /// For an unlock by face: from the deciding frame's capture to the relay edge.
        latency_ms: Option<f64>,
    },
}

impl Record {
    /// When it happened (Unix ms): a decision's frame, a door event.
    pub fn at_ms(&self) -> i64 {
        match self {
            Record::Decision { at_ms, .. } | Record::Door { at_ms, .. } => *at_ms,
        }
    }

    /// The audit-log entry for this record, if it is one the log keeps (decisions at the door,
    /// and unlocks).
    pub fn audit_event(&self) -> Option<super::audit::NewEvent> {
        use super::audit::{Action, EventSource, NewEvent, Outcome};
        match self {
            Record::Decision {
                verdict, quality, ..
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
                    Verdict::Unknown { score } => (Outcome::Unknown, None, *score, None),
                    _ => return None,
                };
                let mut e = NewEvent::new(Action::Access, outcome, EventSource::Door).score(score);
                if let Some(p) = person {
                    e = e.person(p.clone());
                }
                if let Some(r) = reason {
                    e = e.reason(r.clone());
                }
                if let Some(q) = quality {
                    e = e.quality(q.into());
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
        }
    }
}

pub struct DaemonConfig {
    pub policy: PolicyConfig,
    pub door: DoorConfig,
    pub top_k: usize,
    /// How long a granted / denied screen stays before the display returns to idle.
    pub display_hold_ms: u64,
}

/// Remote control of a running door (the HTTP API's door endpoints use it).
#[derive(Clone)]
pub struct DoorHandle {
    tx: mpsc::Sender<(DoorInput, Option<Instant>)>,
    status: Arc<Mutex<DoorStatus>>,
}

impl DoorHandle {
    pub fn unlock_remote(&self) -> bool {
        self.tx
            .send((DoorInput::Unlock(UnlockBy::Remote), None))
            .is_ok()
    }

    pub fn status(&self) -> DoorStatus {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running door.
pub struct Running {
    door: DoorHandle,
    stop: Arc<AtomicBool>,
    decide: Option<JoinHandle<()>>,
    door_thread: Option<JoinHandle<()>>,
    capture: Option<crate::camera::CaptureHandle>,
}

impl Running {
    pub fn door(&self) -> DoorHandle {
        self.door.clone()
    }

    /// The camera has no more frames (a recorded source that does not loop, or a fatal error).
    pub fn camera_finished(&self) -> bool {
        self.decide.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Wait until the camera has no more frames (a recorded source that does not loop) and
    /// the last decision is made.
    pub fn wait_camera_end(&mut self) {
        if let Some(t) = self.decide.take() {
            let _ = t.join();
        }
    }

    /// Stop everything; the relay is left locked.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = self.capture.take() {
            c.stop();
            c.join();
        }
        if let Some(t) = self.decide.take() {
            let _ = t.join();
        }
        if let Some(t) = self.door_thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the door loop. `rt` runs the gallery's async calls.
#[allow(clippy::too_many_arguments)]
pub fn start<S: FrameSource + 'static>(
    models: &Models,
    params: VisionParams,
    gallery: Arc<dyn Gallery>,
    rt: tokio::runtime::Handle,
    hw: Hardware,
    camera: S,
    camera_status: Option<StatusWatch>,
    config: DaemonConfig,
    records: mpsc::Sender<Record>,
) -> Result<Running, DaemonError> {
    let pipeline = Pipeline::new(models, params)?;
    let (capture, frames) = spawn_capture(camera)?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let has_contact = hw.inputs.door_closed().is_some();
    let door = Door::new(config.door, has_contact);
    let status = Arc::new(Mutex::new(door.status()));
    let Hardware {
        relay,
        inputs,
        display,
        wiegand,
        ..
    } = hw;
    let door_thread = {
        let (stop, status, records) = (Arc::clone(&stop), Arc::clone(&status), records.clone());
        std::thread::Builder::new()
            .name("door".into())
            .spawn(move || door_loop(door, relay, inputs, rx, status, records, stop))
            .map_err(|e| DaemonError::Thread("door", e))?
    };
    let decide = {
        let stop = Arc::clone(&stop);
        let tx = tx.clone();
        let mut d = Decider {
            pipeline,
            gallery,
            rt,
            policy: Policy::new(config.policy),
            display,
            wiegand,
            shown: None,
            hold_until: None,
            hold_ms: config.display_hold_ms,
            top_k: config.top_k,
        };
        std::thread::Builder::new()
            .name("decide".into())
            .spawn(move || {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Some(s) = &camera_status
                        && s.get().is_lost()
                    {
                        d.show(Screen::CameraLost, false);
                    }
                    match frames.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(frame)) => {
                            d.frame(&frame.image, frame.captured, frame.seq, &tx, &records)
                        }
                        Ok(None) => d.idle(),
                        Err(e) => {
                            tracing::info!(reason = %e, "camera finished");
                            break;
                        }
                    }
                }
            })
            .map_err(|e| DaemonError::Thread("decide", e))?
    };
    Ok(Running {
        door: DoorHandle { tx, status },
        stop,
        decide: Some(decide),
        door_thread: Some(door_thread),
        capture: Some(capture),
    })
}

struct Decider {
    pipeline: Pipeline,
    gallery: Arc<dyn Gallery>,
    rt: tokio::runtime::Handle,
    policy: Policy,
    display: Box<dyn StatusDisplay>,
    wiegand: Option<Box<dyn CardOutput>>,
    shown: Option<Screen>,
    hold_until: Option<Instant>,
    hold_ms: u64,
    top_k: usize,
}

impl Decider {
    /// Show a screen (unless a decision screen is being held, or `force`).
    fn show(&mut self, screen: Screen, hold: bool) {
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

    fn idle(&mut self) {
        self.show(Screen::Idle, false);
    }

    fn frame(
        &mut self,
        img: &image::RgbImage,
        captured: Instant,
        seq: u64,
        door: &mpsc::Sender<(DoorInput, Option<Instant>)>,
        records: &mpsc::Sender<Record>,
    ) {
        let now = now_ms();
        let (seen, quality, record, refuse) = match self.look(img) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, frame = seq, "frame skipped");
                return;
            }
        };
        let Some(seen) = seen else {
            // A face too turned or too small to judge: keep looking.
            self.show(Screen::Looking, false);
            return;
        };
        let verdict = self.policy.observe(
            &seen,
            record.as_ref(),
            refuse.as_deref(),
            now,
            LocalTime::at(now),
        );
        match &verdict {
            Verdict::Idle => self.show(Screen::Idle, false),
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
                        reason: reason.clone(),
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
                _ => tracing::info!("unknown face"),
            }
            let _ = records.send(Record::Decision {
                at_ms: now,
                verdict,
                quality,
                latency_ms: captured.elapsed().as_secs_f64() * 1000.0,
                frame: seq,
            });
        }
    }

    /// What the largest face shows: `None` when a face is there but cannot be judged.
    #[allow(clippy::type_complexity)]
    fn look(
        &mut self,
        img: &image::RgbImage,
    ) -> Result<
        (
            Option<Seen>,
            Option<Quality>,
            Option<crate::gallery::Person>,
            Option<String>,
        ),
        String,
    > {
        let dets = self.pipeline.detect(img).map_err(|e| e.to_string())?;
        let Some(det) = dets.first() else {
            return Ok((Some(Seen::NoFace), None, None, None));
        };
        let face = self
            .pipeline
            .describe(img, det)
            .map_err(|e| e.to_string())?;
        let Ok(embedding) = &face.embedding else {
            return Ok((None, Some(face.quality), None, None));
        };
        let ident = self
            .rt
            .block_on(self.gallery.identify(&embedding.0, self.top_k))
            .map_err(|e| e.to_string())?;
        let best = ident.candidates.first();
        let record = match best {
            Some(m) if m.score >= self.policy.config().accept => self
                .rt
                .block_on(self.gallery.person(&m.person))
                .map_err(|e| e.to_string())?,
            _ => None,
        };
        let seen = Seen::Face {
            person: best.map(|m| m.person.clone()),
            score: best.map_or(-1.0, |m| m.score),
        };
        Ok((Some(seen), Some(face.quality), record, ident.refuse))
    }
}

fn door_loop(
    mut door: Door,
    mut relay: Box<dyn DoorRelay>,
    mut inputs: Box<dyn DoorSensors>,
    rx: mpsc::Receiver<(DoorInput, Option<Instant>)>,
    status: Arc<Mutex<DoorStatus>>,
    records: mpsc::Sender<Record>,
    stop: Arc<AtomicBool>,
) {
    loop {
        let (input, captured) = match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(v) => v,
            Err(mpsc::RecvTimeoutError::Timeout) => (DoorInput::Tick, None),
            Err(mpsc::RecvTimeoutError::Disconnected) => (DoorInput::Tick, None),
        };
        let mut todo = vec![input];
        match inputs.poll() {
            Ok(events) => todo.extend(events.into_iter().map(|e| match e {
                InputEvent::DoorOpened => DoorInput::DoorOpened,
                InputEvent::DoorClosed => DoorInput::DoorClosed,
                InputEvent::ExitPressed => DoorInput::Unlock(UnlockBy::ExitButton),
            })),
            Err(e) => tracing::warn!(error = %e, "door inputs"),
        }
        for input in todo {
            let (actions, events) = door.handle(input, now_ms());
            for a in actions {
                let r = match a {
                    RelayAction::Unlock => relay.unlock(),
                    RelayAction::Lock => relay.lock(),
                };
                if let Err(e) = r {
                    tracing::error!(error = %e, "relay");
                }
            }
            for event in events {
                let latency_ms = match (&event, captured) {
                    (DoorEvent::Unlocked { .. }, Some(c)) => {
                        Some(c.elapsed().as_secs_f64() * 1000.0)
                    }
                    _ => None,
                };
                let _ = records.send(Record::Door {
                    at_ms: now_ms(),
                    event,
                    latency_ms,
                });
            }
        }
        *status.lock().unwrap_or_else(|p| p.into_inner()) = door.status();
        if stop.load(Ordering::SeqCst) {
            if let Err(e) = relay.lock() {
                tracing::error!(error = %e, "relay");
            }
            break;
        }
    }
}
