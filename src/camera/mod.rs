//! Where frames come from: a V4L2 camera ([`v4l2`]), a folder of recorded images
//! ([`recorded`], the default when the machine has no camera) or an IP camera's HTTP MJPEG
//! stream ([`mjpeg`]), all behind one small [`FrameSource`] trait.
//!
//! The door daemon runs a source as
//! `spawn_capture(Reopening::from_config(&cfg))`: [`Reopening`] reopens a camera that
//! disappeared, with backoff, and publishes a [`CameraStatus`] the display can show; the
//! capture thread writes into a one-frame mailbox ([`latest`]), so the pipeline always works on
//! the newest frame and stale frames are dropped, never queued.

pub mod config;
pub mod ir;
pub mod latest;
pub mod mjpeg;
pub mod probe;
pub mod recent;
pub mod recorded;
pub mod reopen;
pub mod v4l2;

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use image::RgbImage;

pub use config::{CameraConfig, SourceKind};
pub use latest::{CaptureHandle, FrameReceiver, FrameSender, latest_frame, spawn_capture};
pub use mjpeg::MjpegSource;
pub use recorded::RecordedSource;
pub use reopen::{Backoff, CameraStatus, Reopening, StatusWatch};
pub use v4l2::V4l2Source;

/// One captured picture.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// When the frame was captured (taken from the device, or due in a replay).
    pub captured: Instant,
    /// Increases by one for every frame a source delivers (frames lost in between leave gaps
    /// only where a source knows of them).
    pub seq: u64,
}

/// A source of frames. Sync and blocking: `next_frame` waits for the next frame.
pub trait FrameSource: Send {
    /// The next frame. A [`CameraError::is_frame_error`] error loses only this frame: the
    /// source goes on. Any other error means the source is unusable until reopened.
    fn next_frame(&mut self) -> Result<Frame, CameraError>;

    /// What this source is, for logs and the display ("V4L2 /dev/video0 (HD Webcam) 640x480
    /// MJPEG").
    fn describe(&self) -> String;

    /// Make the source's waits (frame pacing, reopen backoff) end early with
    /// [`CameraError::Stopped`] once `stop` is raised. Sources that never wait long ignore it.
    fn attach_stop(&mut self, _stop: &StopSignal) {}
}

impl FrameSource for Box<dyn FrameSource> {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        (**self).next_frame()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn attach_stop(&mut self, stop: &StopSignal) {
        (**self).attach_stop(stop)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CameraError {
    #[error("no usable V4L2 camera {wanted}{}", found_list(.found))]
    NoDevice { wanted: String, found: Vec<String> },
    #[error("camera {device}: {reason}")]
    Device { device: String, reason: String },
    #[error(
        "camera {device} offers none of the formats facegate reads (MJPEG, YUYV, GREY); it offers {}",
        if .offered.is_empty() { "nothing".to_string() } else { .offered.join(", ") }
    )]
    NoFormat {
        device: String,
        offered: Vec<String>,
    },
    #[error("recorded frames {dir}: {reason}")]
    Recorded { dir: PathBuf, reason: String },
    /// The stream failed in a way that may pass (camera off, network down, stream closed):
    /// it is reopened.
    #[error("MJPEG stream {url}: {reason}")]
    Stream { url: String, reason: String },
    /// The URL or the camera's answer shows a configuration error (malformed URL, user and
    /// password wanted or refused, a redirect, not a stream URL): reopening cannot fix it.
    #[error("MJPEG stream {url}: {reason}")]
    StreamConfig { url: String, reason: String },
    /// One frame could not be used (a corrupt image file, a damaged JPEG from the camera);
    /// the source goes on with the next.
    #[error("bad frame from {what}: {reason}")]
    BadFrame { what: String, reason: String },
    /// A source that does not loop has delivered all its frames.
    #[error("{what}: end of the recording")]
    EndOfStream { what: String },
    #[error("camera configuration: {0}")]
    Config(String),
    #[error("capture stopped")]
    Stopped,
}

fn found_list(found: &[String]) -> String {
    if found.is_empty() {
        " (no /dev/video* device found)".into()
    } else {
        format!(" (found: {})", found.join(", "))
    }
}

impl CameraError {
    /// Only this frame is lost; the source goes on.
    pub fn is_frame_error(&self) -> bool {
        matches!(self, CameraError::BadFrame { .. })
    }

    /// A configuration error: no amount of waiting or reopening fixes it (a recorded-frames
    /// folder that does not exist or holds no image, a malformed MJPEG URL, a V4L2 device that
    /// offers none of the formats facegate reads). A camera that is unplugged, unreachable or
    /// stops delivering is *not* permanent: it is reopened with backoff.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            CameraError::Config(_)
                | CameraError::Recorded { .. }
                | CameraError::NoFormat { .. }
                | CameraError::StreamConfig { .. }
        )
    }

    /// The source is finished for good: reopening it would not help.
    pub fn is_final(&self) -> bool {
        matches!(self, CameraError::EndOfStream { .. } | CameraError::Stopped)
            || self.is_permanent()
    }

    /// For a technician: what to change or check, naming the configuration key.
    pub fn advice(&self) -> String {
        match self {
            CameraError::Config(_) => {
                "fix that key in the [camera] section of the configuration".into()
            }
            CameraError::Recorded { .. } => {
                "set camera.recorded_dir to a folder of images (JPEG, PNG, ...), or leave it \
                 empty for the bundled frames"
                    .into()
            }
            CameraError::NoFormat { .. } => {
                "this device is not a usable camera: set camera.device to another camera \
                 (`v4l2-ctl --list-devices` lists them)"
                    .into()
            }
            CameraError::StreamConfig { .. } => {
                "fix camera.mjpeg_url (the camera's MJPEG video stream URL, with the user and \
                 password as http://user:password@host/path when it asks for them)"
                    .into()
            }
            CameraError::NoDevice { .. } => {
                "check that the camera is plugged in (USB cable, CSI ribbon), or set \
                 camera.device to one of the cameras found"
                    .into()
            }
            CameraError::Device { .. } => {
                "check the camera's cable and power; if another program uses it, stop that \
                 program"
                    .into()
            }
            CameraError::Stream { .. } => {
                "check that the IP camera is powered and reachable on the network, and \
                 camera.mjpeg_url"
                    .into()
            }
            CameraError::BadFrame { .. } => "check the camera's picture".into(),
            CameraError::EndOfStream { .. } | CameraError::Stopped => String::new(),
        }
    }
}

/// Ceiling on decoded pixels for frames (the vision default: 40 MP).
pub const MAX_FRAME_PIXELS: u64 = crate::vision::frame::DEFAULT_MAX_PIXELS;

/// Open the source the configuration names, once (no reopening: see [`Reopening`]).
/// "auto" is resolved by [`CameraConfig::resolve_kind`].
pub fn open_from_config(cfg: &CameraConfig) -> Result<Box<dyn FrameSource>, CameraError> {
    cfg.check().map_err(CameraError::Config)?;
    let kind = cfg.resolve_kind();
    let source: Box<dyn FrameSource> = match kind {
        SourceKind::Auto | SourceKind::V4l2 => Box::new(V4l2Source::open(&v4l2::V4l2Params {
            device: cfg.device.clone(),
            width: cfg.width,
            height: cfg.height,
            fps: cfg.fps,
        })?),
        SourceKind::Recorded => Box::new(RecordedSource::open(
            &cfg.recorded_dir()?,
            cfg.recorded_fps,
            cfg.recorded_loop,
        )?),
        SourceKind::Mjpeg => Box::new(MjpegSource::connect(
            &cfg.mjpeg_url,
            Duration::from_millis(cfg.mjpeg_timeout_ms),
        )?),
    };
    tracing::info!(source = %source.describe(), "camera opened");
    Ok(source)
}

/// A flag that stops capture: raised once, seen by every clone; waits on it end early.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl StopSignal {
    pub fn new() -> StopSignal {
        StopSignal::default()
    }

    pub fn stop(&self) {
        *self.lock() = true;
        self.inner.1.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        *self.lock()
    }

    /// Sleep for `d` or until stopped. Returns false if stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopped = self.lock();
        loop {
            if *stopped {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopped = self
                .inner
                .1
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, bool> {
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Lock a mutex, going on with the data if another thread panicked while holding it (every
/// value kept under the camera's locks is valid at all times).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signal_cuts_a_sleep_short() {
        let stop = StopSignal::new();
        assert!(stop.sleep(Duration::from_millis(1)));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || {
            let start = Instant::now();
            let finished = s2.sleep(Duration::from_secs(30));
            (finished, start.elapsed())
        });
        std::thread::sleep(Duration::from_millis(20));
        stop.stop();
        let (finished, took) = t.join().unwrap();
        assert!(!finished);
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(stop.is_stopped());
    }

    #[test]
    fn error_messages_name_what_failed() {
        let e = CameraError::NoDevice {
            wanted: "named \"Logitech\"".into(),
            found: vec!["/dev/video0 (bcm2835-isp)".into()],
        };
        let m = e.to_string();
        assert!(
            m.contains("Logitech") && m.contains("/dev/video0 (bcm2835-isp)"),
            "{m}"
        );
        let e = CameraError::NoFormat {
            device: "/dev/video2".into(),
            offered: vec!["pRAA".into()],
        };
        assert!(e.to_string().contains("/dev/video2") && e.to_string().contains("pRAA"));
        assert!(
            CameraError::BadFrame {
                what: "a.jpg".into(),
                reason: "x".into()
            }
            .is_frame_error()
        );
        assert!(CameraError::EndOfStream { what: "x".into() }.is_final());
        assert!(
            !CameraError::Stream {
                url: "u".into(),
                reason: "r".into()
            }
            .is_final()
        );
    }
}
