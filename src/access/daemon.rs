//! The door loop: camera → vision → gallery → policy → door → relay and display.
//!
//! Three threads: the camera's capture thread (a one-frame mailbox: the newest frame wins,
//! stale frames are dropped), the decision thread (vision and gallery on the newest frame,
//! then the policy), and the door thread (the door state machine: relay timing, door contact,
//! exit button), which reacts to a grant as soon as it is sent. Every decision and door event
//! goes to an [`mpsc::Sender<Record>`] for the audit log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::camera_view::{self, CameraView};
use super::decision::{self, Decision, OperatingPoint};
use super::door::{Door, DoorConfig, DoorEvent, DoorInput, DoorStatus, RelayAction, UnlockBy};
use super::policy::{Policy, PolicyConfig, Seen, Step, Verdict};
use crate::camera::recent::{RECENT_FRAMES, RecentCapture, RecentFrames, spawn_recent};
use crate::camera::{CameraError, FrameSource, StatusWatch, spawn_capture};
use crate::gallery::{Gallery, now_ms};
use crate::hw::{CardOutput, DoorRelay, DoorSensors, Hardware, InputEvent, Screen, StatusDisplay};
use crate::vision::liveness::ir::{IrOutcome, IrParams, IrVisit};
use crate::vision::liveness::{self, FrameEvidence, Mode, Visit, VisitScore};
use crate::vision::{Models, Pipeline, Quality, VisionParams};

mod decide;
mod rate;
mod record;
pub mod track;

use decide::*;
pub use record::{FACE_JPEG_QUALITY, Record, face_jpeg};
pub use track::TrackConfig;
use track::{Plan, Tracker};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("vision: {0}")]
    Vision(#[from] crate::vision::VisionError),
    #[error("camera: {0}")]
    Camera(#[from] CameraError),
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
}

pub struct DaemonConfig {
    pub policy: PolicyConfig,
    /// The decision rule (threshold for a visit at the gallery's size, margin), shared with
    /// the API and `/readyz`.
    pub operating: Arc<OperatingPoint>,
    pub door: DoorConfig,
    pub top_k: usize,
    /// How long a granted / denied screen stays before the display returns to idle.
    pub display_hold_ms: u64,
    /// Recognition workers (at least 1): threads that each look at the newest frame.
    pub workers: usize,
    /// Attach the deciding frame's aligned face crop to each decision record
    /// (`access.save_face_crops`).
    pub save_face_crops: bool,
    /// The face tracker: embed a visit's face once, again only when seen better or every
    /// `refresh_frames` frames (`access.track_faces`, `access.track_refresh_frames`).
    pub track: TrackConfig,
}

/// The door's optional infrared camera (`liveness.ir`, `[camera.ir]`): each face a visit is
/// decided on must also be seen in its frames ([`crate::vision::liveness::ir`]).
pub struct IrCamera {
    pub source: Box<dyn FrameSource>,
    /// "warn": measured and logged; "enforce": a visit that fails is refused as not live.
    pub mode: Mode,
    pub params: IrParams,
}

impl IrCamera {
    /// The infrared camera the configuration names, when `liveness.ir` is on.
    pub fn from_config(config: &crate::config::Config) -> Option<IrCamera> {
        (config.liveness.ir != Mode::Off).then(|| IrCamera {
            source: Box::new(config.camera.ir.open(&config.camera)),
            mode: config.liveness.ir,
            params: IrParams::from_config(&config.liveness, &config.camera.ir),
        })
    }
}

/// Remote control of a running door (the HTTP API's door endpoints use it).
#[derive(Clone)]
pub struct DoorHandle {
    tx: mpsc::Sender<(DoorInput, Option<Instant>)>,
    status: Arc<Mutex<DoorStatus>>,
    view: Arc<CameraView>,
    rate: Arc<rate::FrameRate>,
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

    /// Frames the door looks at per second (a moving average; 0 when none lately).
    pub fn frames_per_second(&self) -> f64 {
        self.rate.per_second(Instant::now())
    }

    /// What the door's camera sees, while somebody watches (enrollment at the door).
    pub fn camera_view(&self) -> Arc<CameraView> {
        Arc::clone(&self.view)
    }
}

/// A running door.
pub struct Running {
    door: DoorHandle,
    stop: Arc<AtomicBool>,
    decide: Option<JoinHandle<()>>,
    door_thread: Option<JoinHandle<()>>,
    capture: Option<crate::camera::CaptureHandle>,
    /// The infrared camera's threads, when it is on.
    ir_capture: Option<RecentCapture>,
    decided: Arc<AtomicU64>,
    tracker: Arc<Mutex<Tracker>>,
}

impl Running {
    pub fn door(&self) -> DoorHandle {
        self.door.clone()
    }

    /// Frames looked at by the decision thread so far (those the camera delivered while it
    /// was busy were dropped, newest frame first).
    pub fn frames_decided(&self) -> u64 {
        self.decided.load(Ordering::Relaxed)
    }

    /// Faces embedded, and faces whose embedding the tracker reused from an earlier frame of
    /// the same visit, so far.
    pub fn faces_embedded(&self) -> (u64, u64) {
        let t = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
        (t.embeds, t.reuses)
    }

    /// The camera has no more frames (a recorded source that does not loop). A misconfigured
    /// camera (`CameraStatus::Misconfigured`) does not finish: the door keeps running without
    /// recognition until stopped.
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
        if let Some(c) = self.ir_capture.take() {
            c.stop();
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
    start_with_ir(
        models,
        params,
        gallery,
        rt,
        hw,
        camera,
        camera_status,
        config,
        None,
        records,
    )
}

/// [`start`], with the optional infrared camera (`None`, or mode "off": none).
#[allow(clippy::too_many_arguments)]
pub fn start_with_ir<S: FrameSource + 'static>(
    models: &Models,
    params: VisionParams,
    gallery: Arc<dyn Gallery>,
    rt: tokio::runtime::Handle,
    hw: Hardware,
    camera: S,
    camera_status: Option<StatusWatch>,
    config: DaemonConfig,
    ir: Option<IrCamera>,
    records: mpsc::Sender<Record>,
) -> Result<Running, DaemonError> {
    let workers = config.workers.max(1);
    let pipelines = (0..workers)
        .map(|_| Pipeline::new(models, params.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let (capture, frames) = spawn_capture(camera)?;
    // The infrared camera starts with the colour one (a replay of both stays in step).
    let ir = ir.filter(|ir| ir.mode != Mode::Off);
    let (ir_capture, ir) = match ir {
        Some(IrCamera {
            source,
            mode,
            params,
        }) => {
            tracing::info!(camera = %source.describe(), mode = mode.as_str(), "infrared check on");
            let (capture, recent) = spawn_recent(source, RECENT_FRAMES)?;
            (Some(capture), Some((mode, recent, params)))
        }
        None => (None, None),
    };
    let frames = Arc::new(frames);
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

    // The recognition workers: each takes the newest frame, looks at it and hands the result
    // to the decision thread; with two or more, the next frame is being looked at while the
    // last is still in the network.
    let decided = Arc::new(AtomicU64::new(0));
    let view = CameraView::new();
    let rate = Arc::new(rate::FrameRate::default());
    let (looks_tx, looks) = mpsc::channel::<Looked>();
    let tracker = Arc::new(Mutex::new(Tracker::new(config.track)));
    // The liveness stage and the head-turn challenge need every frame's closer look (the
    // liveness network's box, the landmarks): then a tracked face skips only the embedder.
    let door_liveness = models.liveness.as_ref().is_some_and(|l| {
        l.config.door != Mode::Off || l.config.challenge != liveness::ChallengeKind::Off
    });
    for (i, pipeline) in pipelines.into_iter().enumerate() {
        let mut w = Worker {
            pipeline,
            save_crops: config.save_face_crops,
            tracker: Arc::clone(&tracker),
            coarse_when_tracked: config.track.enabled && !door_liveness && ir.is_none(),
            ir: ir.as_ref().map(|(_, r, p)| (r.clone(), *p)),
        };
        let (stop, frames, looks_tx, decided, view) = (
            Arc::clone(&stop),
            Arc::clone(&frames),
            looks_tx.clone(),
            Arc::clone(&decided),
            Arc::clone(&view),
        );
        std::thread::Builder::new()
            .name(format!("recognise-{i}"))
            .spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match frames.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(frame)) => {
                            let look = w.look(&frame.image, frame.seq, frame.captured);
                            decided.fetch_add(1, Ordering::Relaxed);
                            // Only while the console watches (enrollment at the door).
                            if let Ok(l) = &look
                                && view.watched()
                            {
                                view.offer(camera_view::Seen {
                                    seq: frame.seq,
                                    at: frame.captured,
                                    image: Arc::new(frame.image.clone()),
                                    faces: l.faces,
                                    face: l.face,
                                    quality: l.quality,
                                    refusal: l.refusal.clone(),
                                });
                            }
                            let sent = looks_tx.send(Looked {
                                seq: frame.seq,
                                captured: frame.captured,
                                look,
                            });
                            if sent.is_err() {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::info!(reason = %e, "camera finished");
                            break;
                        }
                    }
                }
            })
            .map_err(|e| DaemonError::Thread("recognition", e))?;
    }
    drop(looks_tx);

    let decide = {
        let stop = Arc::clone(&stop);
        let frame_rate = Arc::clone(&rate);
        let tx = tx.clone();
        let liveness = models
            .liveness
            .as_ref()
            .filter(|l| l.config.door != Mode::Off)
            .map(|l| (l.config.door, Visit::new(&l.config)));
        let window = models
            .liveness
            .as_ref()
            .map_or(liveness::LivenessConfig::default().window, |l| {
                l.config.window
            });
        let mut d = Decider {
            liveness,
            ir: ir
                .as_ref()
                .map(|(mode, _, _)| (*mode, IrVisit::new(window))),
            policy: Policy::new(config.policy),
            display,
            wiegand,
            shown: None,
            hold_until: None,
            hold_ms: config.display_hold_ms,
            last_seq: 0,
            camera_lost: false,
            gallery: Arc::clone(&gallery),
            rt: rt.clone(),
            top_k: config.top_k,
            operating: Arc::clone(&config.operating),
            challenge: models
                .liveness
                .as_ref()
                .filter(|l| l.config.challenge != liveness::ChallengeKind::Off)
                .map(|l| Duration::from_millis(l.config.challenge_timeout_ms)),
            pending: None,
        };
        std::thread::Builder::new()
            .name("decide".into())
            .spawn(move || {
                loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    d.camera_lost = camera_status.as_ref().is_some_and(|s| s.get().is_lost());
                    if d.camera_lost {
                        d.idle();
                    }
                    match looks.recv_timeout(Duration::from_millis(200)) {
                        Ok(l) => {
                            frame_rate.tick(l.captured);
                            d.decide(l, &tx, &records)
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            d.expire_challenge(&tx, &records);
                            d.idle();
                        }
                        // Every worker ended: the camera has no more frames.
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            // A head turn still awaited is refused when its time is up.
                            d.finish_challenge(&stop, &tx, &records);
                            if let Some(s) = &camera_status
                                && s.get().is_misconfigured()
                            {
                                // Not retried: say so on the display and keep the door
                                // (exit button, remote unlock) running until stopped.
                                d.show(Screen::CameraLost, true);
                                while !stop.load(Ordering::SeqCst) {
                                    std::thread::sleep(Duration::from_millis(200));
                                }
                            }
                            break;
                        }
                    }
                }
            })
            .map_err(|e| DaemonError::Thread("decide", e))?
    };
    Ok(Running {
        door: DoorHandle {
            tx,
            status,
            view,
            rate,
        },
        stop,
        decide: Some(decide),
        door_thread: Some(door_thread),
        capture: Some(capture),
        ir_capture,
        decided,
        tracker,
    })
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
    // The door's timers run on the monotonic clock: a wall clock set back (NTP on a board
    // without a real-time clock, a manual change) must not hold the door unlocked.
    let start = Instant::now();
    let door_ms = || i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
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
            let (actions, events) = door.handle(input, door_ms());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_lost_comes_before_offline_and_offline_before_idle() {
        assert_eq!(resting_screen(true, || Some(false)), Screen::CameraLost);
        assert_eq!(resting_screen(true, || Some(true)), Screen::CameraLost);
        assert_eq!(resting_screen(false, || Some(false)), Screen::Offline);
        assert_eq!(resting_screen(false, || Some(true)), Screen::Idle);
        // No central store (a standalone door), or not asked yet: never "offline".
        assert_eq!(resting_screen(false, || None), Screen::Idle);
    }

    #[test]
    fn a_decision_with_a_face_crop_becomes_an_event_with_its_jpeg() {
        let crop = image::RgbImage::from_fn(112, 112, |x, y| {
            image::Rgb([(x * 2) as u8, (y * 2) as u8, ((x + y) % 256) as u8])
        });
        let record = Record::Decision {
            at_ms: 1,
            verdict: Verdict::Granted {
                person: "p".into(),
                score: 0.9,
            },
            quality: None,
            latency_ms: 1.0,
            frame: 7,
            liveness: None,
            face: Some(crop.clone()),
        };
        // The crop stays out of the JSON line.
        let line = serde_json::to_string(&record).unwrap();
        assert!(!line.contains("face"), "{line}");
        let e = record.audit_event().unwrap();
        let jpeg = e.face_jpeg.expect("a JPEG");
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let back = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (112, 112));
        // Lossy but close: mean absolute error of a smooth image at quality 85.
        let err: f64 = back
            .as_raw()
            .iter()
            .zip(crop.as_raw())
            .map(|(a, b)| f64::from((i16::from(*a) - i16::from(*b)).unsigned_abs()))
            .sum::<f64>()
            / crop.as_raw().len() as f64;
        assert!(err < 6.0, "mean error {err}");
    }
}
