//! A camera that disappears (unplugged, stream closed, driver hung) is reopened, with a wait
//! that doubles after each failed attempt, and the state is published as a [`CameraStatus`]
//! so the display can say the camera is lost.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{CameraError, Frame, FrameSource, StopSignal, lock};

/// The state of a camera, as the display shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraStatus {
    /// Not opened yet.
    Starting,
    /// Frames are arriving from `source`.
    Streaming { source: String },
    /// The camera failed or could not be opened; the next attempt is `retry_in` after this
    /// status was set.
    Lost {
        reason: String,
        /// Failed attempts since frames last arrived.
        attempts: u32,
        retry_in: Duration,
    },
    /// The source is finished for good (a replay that does not loop).
    Ended { reason: String },
    /// A configuration error ([`CameraError::is_permanent`]): not retried. `reason` says
    /// what is wrong, `advice` what to change.
    Misconfigured { reason: String, advice: String },
    /// Capture was stopped.
    Stopped,
}

impl CameraStatus {
    pub fn is_streaming(&self) -> bool {
        matches!(self, CameraStatus::Streaming { .. })
    }

    pub fn is_lost(&self) -> bool {
        matches!(self, CameraStatus::Lost { .. })
    }

    pub fn is_misconfigured(&self) -> bool {
        matches!(self, CameraStatus::Misconfigured { .. })
    }

    /// A short line for a small display.
    pub fn headline(&self) -> String {
        match self {
            CameraStatus::Starting => "Camera starting".into(),
            CameraStatus::Streaming { .. } => "Camera OK".into(),
            CameraStatus::Lost { retry_in, .. } => {
                format!("Camera lost - retrying in {} s", retry_in.as_secs().max(1))
            }
            CameraStatus::Ended { .. } => "Camera stopped".into(),
            CameraStatus::Misconfigured { .. } => "Camera misconfigured".into(),
            CameraStatus::Stopped => "Camera off".into(),
        }
    }
}

/// The current [`CameraStatus`], readable from any thread; a version number counts changes.
#[derive(Debug, Clone)]
pub struct StatusWatch {
    inner: Arc<(Mutex<(u64, CameraStatus)>, Condvar)>,
}

impl Default for StatusWatch {
    fn default() -> Self {
        StatusWatch {
            inner: Arc::new((Mutex::new((0, CameraStatus::Starting)), Condvar::new())),
        }
    }
}

impl StatusWatch {
    pub fn get(&self) -> CameraStatus {
        lock(&self.inner.0).1.clone()
    }

    /// The status and its version (incremented on every change).
    pub fn versioned(&self) -> (u64, CameraStatus) {
        lock(&self.inner.0).clone()
    }

    /// Wait until the version is past `seen`, up to `timeout`; the new version and status,
    /// or `None` on timeout.
    pub fn wait_change(&self, seen: u64, timeout: Duration) -> Option<(u64, CameraStatus)> {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.inner.0);
        while g.0 <= seen {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = self
                .inner
                .1
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        Some(g.clone())
    }

    fn set(&self, status: CameraStatus) {
        let mut g = lock(&self.inner.0);
        if g.1 != status {
            g.0 += 1;
            g.1 = status;
            self.inner.1.notify_all();
        }
    }
}

/// Exponential backoff: `min`, then doubling up to `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CameraError> + Send>;

/// A source that opens its inner source on demand and reopens it after any failure that is
/// not final. Frame errors pass through; frame numbers stay increasing across reopens. A
/// configuration error ([`CameraError::is_permanent`]) is not retried: the source ends and the
/// status says [`CameraStatus::Misconfigured`].
pub struct Reopening {
    describe: String,
    open: Opener,
    inner: Option<Box<dyn FrameSource>>,
    backoff: Backoff,
    status: StatusWatch,
    stop: StopSignal,
    /// Wait before the next open attempt.
    wait: Option<Duration>,
    failures: u32,
    ended: Option<CameraError>,
    seq: u64,
    /// False only while [`Reopening::open_now`] runs.
    started: bool,
}

impl Reopening {
    /// `open` is called for the first frame and again after every failure.
    pub fn new(
        describe: impl Into<String>,
        backoff: Backoff,
        open: impl FnMut() -> Result<Box<dyn FrameSource>, CameraError> + Send + 'static,
    ) -> Reopening {
        Reopening {
            describe: describe.into(),
            open: Box::new(open),
            inner: None,
            backoff,
            status: StatusWatch::default(),
            stop: StopSignal::new(),
            wait: None,
            failures: 0,
            ended: None,
            seq: 0,
            started: true,
        }
    }

    /// The status, to be read by the display and others.
    pub fn status(&self) -> StatusWatch {
        self.status.clone()
    }

    fn failed(&mut self, e: &CameraError) {
        self.failures += 1;
        let retry_in = self.backoff.next_delay();
        tracing::warn!(
            camera = %self.describe,
            error = %e,
            attempts = self.failures,
            retry_in_ms = retry_in.as_millis() as u64,
            "camera lost; reopening"
        );
        self.status.set(CameraStatus::Lost {
            reason: e.to_string(),
            attempts: self.failures,
            retry_in,
        });
        self.wait = Some(retry_in);
    }

    /// Open the source now instead of on the first frame (a daemon does this at start-up, to
    /// refuse a configuration error at once). `Err` is a configuration error: the source has
    /// ended. `Ok(Some(e))`: the camera is not there yet (unplugged, unreachable); the status
    /// says Lost and the next frame request retries after the backoff. `Ok(None)`: open.
    pub fn open_now(&mut self) -> Result<Option<CameraError>, CameraError> {
        // A configuration error found here is the caller's to report (not logged twice).
        self.started = false;
        let result = self.open_first();
        self.started = true;
        result
    }

    fn open_first(&mut self) -> Result<Option<CameraError>, CameraError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        if self.inner.is_some() {
            return Ok(None);
        }
        match (self.open)() {
            Ok(mut s) => {
                s.attach_stop(&self.stop);
                self.inner = Some(s);
                Ok(None)
            }
            Err(e) if e.is_final() => Err(self.end(e)),
            Err(e) => {
                self.failed(&e);
                Ok(Some(e))
            }
        }
    }

    fn end(&mut self, e: CameraError) -> CameraError {
        self.inner = None;
        self.status.set(match &e {
            CameraError::Stopped => CameraStatus::Stopped,
            other if other.is_permanent() => {
                if self.started {
                    tracing::error!(
                        camera = %self.describe,
                        error = %other,
                        advice = %other.advice(),
                        "camera misconfigured; not retried"
                    );
                }
                CameraStatus::Misconfigured {
                    reason: other.to_string(),
                    advice: other.advice(),
                }
            }
            other => CameraStatus::Ended {
                reason: other.to_string(),
            },
        });
        self.ended = Some(e.clone());
        e
    }
}

impl FrameSource for Reopening {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        loop {
            if let Some(e) = &self.ended {
                return Err(e.clone());
            }
            if self.stop.is_stopped() {
                return Err(self.end(CameraError::Stopped));
            }
            let inner = match &mut self.inner {
                Some(inner) => inner,
                None => {
                    if let Some(d) = self.wait.take()
                        && !self.stop.sleep(d)
                    {
                        return Err(self.end(CameraError::Stopped));
                    }
                    match (self.open)() {
                        Ok(mut s) => {
                            s.attach_stop(&self.stop);
                            self.inner.insert(s)
                        }
                        Err(e) if e.is_final() => return Err(self.end(e)),
                        Err(e) => {
                            self.failed(&e);
                            continue;
                        }
                    }
                }
            };
            match inner.next_frame() {
                Ok(mut frame) => {
                    if !self.status.get().is_streaming() {
                        let source = inner.describe();
                        tracing::info!(camera = %source, "camera streaming");
                        self.status.set(CameraStatus::Streaming { source });
                    }
                    self.backoff.reset();
                    self.failures = 0;
                    self.seq += 1;
                    frame.seq = self.seq;
                    return Ok(frame);
                }
                Err(e) if e.is_frame_error() => return Err(e),
                Err(e) if e.is_final() => return Err(self.end(e)),
                Err(e) => {
                    self.inner = None;
                    self.failed(&e);
                }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.inner {
            Some(inner) => inner.describe(),
            None => self.describe.clone(),
        }
    }

    fn attach_stop(&mut self, stop: &StopSignal) {
        self.stop = stop.clone();
        if let Some(inner) = &mut self.inner {
            inner.attach_stop(stop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A source that gives `frames` frames, then fails.
    struct Flaky {
        frames: u32,
    }

    impl FrameSource for Flaky {
        fn next_frame(&mut self) -> Result<Frame, CameraError> {
            if self.frames == 0 {
                return Err(CameraError::Device {
                    device: "flaky".into(),
                    reason: "unplugged".into(),
                });
            }
            self.frames -= 1;
            Ok(Frame {
                image: image::RgbImage::new(2, 2),
                captured: Instant::now(),
                seq: 1,
            })
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn failures_reopen_with_growing_waits_and_renumber_frames() {
        let opens = Arc::new(AtomicU32::new(0));
        let o = opens.clone();
        let (gate_tx, gate) = std::sync::mpsc::channel::<()>();
        // Opening fails twice, then gives sources of 2 frames each; from the fourth attempt
        // on, opening waits for the test to open the gate.
        let mut r = Reopening::new(
            "test",
            Backoff::new(Duration::from_millis(5), Duration::from_millis(40)),
            move || {
                let n = o.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    return Err(CameraError::NoDevice {
                        wanted: "test".into(),
                        found: vec![],
                    });
                }
                if n >= 3 {
                    gate.recv().map_err(|_| CameraError::Stopped)?;
                }
                Ok(Box::new(Flaky { frames: 2 }) as Box<dyn FrameSource>)
            },
        );
        let status = r.status();
        assert_eq!(status.get(), CameraStatus::Starting);
        let start = Instant::now();
        let seqs: Vec<u64> = (0..2).map(|_| r.next_frame().unwrap().seq).collect();
        assert_eq!(seqs, [1, 2]);
        assert!(status.get().is_streaming());
        assert_eq!(opens.load(Ordering::SeqCst), 3);
        // Waits of 5 then 10 ms before the third attempt.
        assert!(
            start.elapsed() >= Duration::from_millis(15),
            "{:?}",
            start.elapsed()
        );

        // The source fails after its 2 frames: Lost, with the reason, one attempt, and the
        // backoff back at its minimum (frames had arrived).
        let t = std::thread::spawn(move || (r.next_frame(), r));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !status.get().is_lost() {
            assert!(Instant::now() < deadline, "never Lost: {:?}", status.get());
            std::thread::sleep(Duration::from_millis(1));
        }
        match status.get() {
            CameraStatus::Lost {
                reason,
                attempts,
                retry_in,
            } => {
                assert!(reason.contains("unplugged"), "{reason}");
                assert_eq!((attempts, retry_in), (1, Duration::from_millis(5)));
            }
            other => panic!("expected Lost, got {other:?}"),
        }
        gate_tx.send(()).unwrap();
        let (frame, r) = t.join().unwrap();
        assert_eq!(frame.unwrap().seq, 3, "numbering goes on across reopens");
        assert!(r.status().get().is_streaming());
        assert_eq!(opens.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn stop_ends_a_backoff_wait_and_is_final() {
        let mut r = Reopening::new(
            "never",
            Backoff::new(Duration::from_secs(60), Duration::from_secs(60)),
            || {
                Err(CameraError::NoDevice {
                    wanted: String::new(),
                    found: vec![],
                })
            },
        );
        let stop = StopSignal::new();
        r.attach_stop(&stop);
        let status = r.status();
        let t = std::thread::spawn(move || {
            let e = r.next_frame().unwrap_err();
            (e, r.next_frame().unwrap_err())
        });
        // Lost after the first attempt, then waiting 60 s: the stop ends the wait.
        while !status.get().is_lost() {
            std::thread::sleep(Duration::from_millis(2));
        }
        stop.stop();
        let (e1, e2) = t.join().unwrap();
        assert_eq!((e1, e2), (CameraError::Stopped, CameraError::Stopped));
        assert_eq!(status.get(), CameraStatus::Stopped);
    }

    #[test]
    fn configuration_errors_are_not_retried() {
        let opens = Arc::new(AtomicU32::new(0));
        let o = opens.clone();
        let mut r = Reopening::new(
            "bad",
            Backoff::new(Duration::from_millis(1), Duration::from_millis(1)),
            move || {
                o.fetch_add(1, Ordering::SeqCst);
                Err(CameraError::Config(
                    "camera.fps = 0 is outside 1..240".into(),
                ))
            },
        );
        assert!(matches!(r.next_frame(), Err(CameraError::Config(_))));
        assert!(matches!(r.next_frame(), Err(CameraError::Config(_))));
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        assert!(r.status().get().is_misconfigured());
    }

    /// A scripted stand-in camera: each `next_frame` takes the next step of its script (a
    /// frame, or an error); an exhausted script is an unplugged camera.
    struct Scripted {
        steps: std::collections::VecDeque<Result<(), CameraError>>,
    }

    impl FrameSource for Scripted {
        fn next_frame(&mut self) -> Result<Frame, CameraError> {
            match self.steps.pop_front() {
                Some(Ok(())) => Ok(Frame {
                    image: image::RgbImage::new(2, 2),
                    captured: Instant::now(),
                    seq: 0,
                }),
                Some(Err(e)) => Err(e),
                None => Err(CameraError::Device {
                    device: "scripted".into(),
                    reason: "capture failed: No such device (os error 19)".into(),
                }),
            }
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    type Opening = Result<Vec<Result<(), CameraError>>, CameraError>;

    /// A `Reopening` whose opener plays `opens` in turn (then fails as unplugged), counting
    /// the attempts.
    fn scripted(opens: Vec<Opening>) -> (Reopening, Arc<AtomicU32>) {
        let count = Arc::new(AtomicU32::new(0));
        let c = count.clone();
        let mut script: std::collections::VecDeque<Opening> = opens.into();
        let r = Reopening::new(
            "scripted camera",
            Backoff::new(Duration::from_millis(1), Duration::from_millis(2)),
            move || {
                c.fetch_add(1, Ordering::SeqCst);
                match script.pop_front() {
                    Some(Ok(steps)) => Ok(Box::new(Scripted {
                        steps: steps.into(),
                    }) as Box<dyn FrameSource>),
                    Some(Err(e)) => Err(e),
                    None => Err(CameraError::NoDevice {
                        wanted: String::new(),
                        found: vec![],
                    }),
                }
            },
        );
        (r, count)
    }

    fn unplugged() -> CameraError {
        CameraError::Device {
            device: "/dev/video0".into(),
            reason: "cannot open: No such file or directory (os error 2)".into(),
        }
    }

    fn refused() -> CameraError {
        CameraError::Stream {
            url: "http://cam/video".into(),
            reason: "cannot connect to 10.0.0.9:80: Connection refused (os error 111)".into(),
        }
    }

    fn folder_gone() -> CameraError {
        CameraError::Recorded {
            dir: "/srv/frames".into(),
            reason: "the folder does not exist".into(),
        }
    }

    #[test]
    fn an_unplugged_or_unreachable_camera_is_retried_until_it_is_back() {
        let (mut r, opens) = scripted(vec![
            Err(unplugged()),
            Err(CameraError::NoDevice {
                wanted: String::new(),
                found: vec![],
            }),
            Err(refused()),
            Ok(vec![Ok(()), Err(refused())]),
            Err(unplugged()),
            Ok(vec![Ok(())]),
        ]);
        let status = r.status();
        assert_eq!(r.next_frame().unwrap().seq, 1);
        assert_eq!(
            opens.load(Ordering::SeqCst),
            4,
            "three failed opens retried"
        );
        // The stream drops, one reopen fails, the next one works.
        assert_eq!(r.next_frame().unwrap().seq, 2);
        assert_eq!(opens.load(Ordering::SeqCst), 6);
        assert!(status.get().is_streaming());
    }

    #[test]
    fn a_configuration_error_after_a_reopen_stops_the_camera_and_says_why() {
        // Frames, then the camera goes away; when it is reopened, its folder is gone.
        let (mut r, opens) = scripted(vec![Ok(vec![Ok(()), Ok(())]), Err(folder_gone())]);
        let status = r.status();
        assert!(r.next_frame().is_ok() && r.next_frame().is_ok());
        let e = r.next_frame().unwrap_err();
        assert_eq!(e, folder_gone());
        assert!(e.is_permanent() && e.advice().contains("camera.recorded_dir"));
        match status.get() {
            CameraStatus::Misconfigured { reason, advice } => {
                assert!(reason.contains("/srv/frames"), "{reason}");
                assert!(advice.contains("camera.recorded_dir"), "{advice}");
            }
            other => panic!("expected Misconfigured, got {other:?}"),
        }
        assert_eq!(status.get().headline(), "Camera misconfigured");
        // Not retried: later calls give the same error without opening again.
        for _ in 0..3 {
            assert_eq!(r.next_frame().unwrap_err(), folder_gone());
        }
        assert_eq!(opens.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_permanent_error_from_an_open_source_is_not_retried_either() {
        let no_format = CameraError::NoFormat {
            device: "/dev/video0 (ISP)".into(),
            offered: vec!["pRAA".into()],
        };
        let (mut r, opens) = scripted(vec![Ok(vec![Ok(()), Err(no_format.clone())])]);
        assert!(r.next_frame().is_ok());
        assert_eq!(r.next_frame().unwrap_err(), no_format);
        assert_eq!(r.next_frame().unwrap_err(), no_format);
        assert_eq!(opens.load(Ordering::SeqCst), 1);
        assert!(r.status().get().is_misconfigured());
    }

    #[test]
    fn open_now_refuses_a_configuration_error_and_defers_a_missing_camera() {
        // A configuration error: refused at once, and the source has ended.
        let (mut r, opens) = scripted(vec![Err(folder_gone())]);
        assert_eq!(r.open_now().unwrap_err(), folder_gone());
        assert!(r.status().get().is_misconfigured());
        assert_eq!(r.next_frame().unwrap_err(), folder_gone());
        assert_eq!(opens.load(Ordering::SeqCst), 1);

        // Unplugged at start-up: reported, Lost, and retried by the first frame request.
        let (mut r, opens) = scripted(vec![Err(unplugged()), Ok(vec![Ok(())])]);
        assert_eq!(r.open_now().unwrap(), Some(unplugged()));
        assert!(r.status().get().is_lost());
        assert_eq!(r.next_frame().unwrap().seq, 1);
        assert_eq!(opens.load(Ordering::SeqCst), 2);

        // Opened at start-up: the first frame comes from that source, not a second open.
        let (mut r, opens) = scripted(vec![Ok(vec![Ok(())])]);
        assert_eq!(r.open_now().unwrap(), None);
        assert_eq!(r.open_now().unwrap(), None, "already open: no second open");
        assert_eq!(r.next_frame().unwrap().seq, 1);
        assert_eq!(opens.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn which_errors_are_permanent() {
        for e in [
            CameraError::Config("camera.fps = 0".into()),
            folder_gone(),
            CameraError::NoFormat {
                device: "d".into(),
                offered: vec![],
            },
            CameraError::StreamConfig {
                url: "u".into(),
                reason: "the camera refused the user and password (HTTP 401)".into(),
            },
        ] {
            assert!(e.is_permanent() && e.is_final(), "{e}");
            // The key to fix is named, in the advice or (for a range error) the message.
            let told = format!("{e} {}", e.advice());
            assert!(told.contains("camera."), "{told}");
        }
        for e in [
            unplugged(),
            refused(),
            CameraError::NoDevice {
                wanted: String::new(),
                found: vec![],
            },
        ] {
            assert!(!e.is_permanent() && !e.is_final(), "{e}");
        }
        assert!(!CameraError::Stopped.is_permanent() && CameraError::Stopped.is_final());
    }
}
