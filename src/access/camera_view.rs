//! The door camera's view, for enrolling a person at the door from the web console: the
//! newest frame the recognition workers looked at, with its faces and why the face is not
//! usable, kept only while somebody watches.
//!
//! Nothing is kept while nobody watches ([`CameraView::watched`] is false: the workers skip
//! the copy), and a watch lapses [`WATCH_FOR`] after the last request, so an abandoned
//! browser tab does not keep camera images in memory. Frames shown here are biometric data:
//! the console serves them to the admin only.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use image::RgbImage;

use crate::vision::Quality;
use crate::vision::detect::BBox;

/// How long a watch lasts after the last request.
pub const WATCH_FOR: Duration = Duration::from_secs(10);
/// A frame older than this is not shown (the camera stalled or is gone).
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// One frame as the recognition worker saw it.
#[derive(Clone)]
pub struct Seen {
    /// The camera's frame number.
    pub seq: u64,
    pub at: Instant,
    pub image: Arc<RgbImage>,
    /// Faces found.
    pub faces: usize,
    /// The largest face's box, in frame pixels.
    pub face: Option<BBox>,
    /// Its quality, when it could be measured.
    pub quality: Option<Quality>,
    /// Why the largest face cannot be used (too turned, too small…); `None` when it can.
    pub refusal: Option<String>,
}

/// Without the image (never printed or logged).
impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("seq", &self.seq)
            .field("faces", &self.faces)
            .field("face", &self.face)
            .field("quality", &self.quality)
            .field("refusal", &self.refusal)
            .finish_non_exhaustive()
    }
}

impl Seen {
    /// One face, usable by the door's quality limits.
    pub fn usable(&self) -> bool {
        self.faces == 1 && self.face.is_some() && self.quality.is_some() && self.refusal.is_none()
    }

    /// What a person at the camera should do, in a few words.
    pub fn advice(&self) -> String {
        match (self.faces, &self.refusal) {
            (0, _) => "no face: look at the camera".into(),
            (1, None) if self.quality.is_some() => "good: hold still and press Capture".into(),
            (1, Some(r)) => format!("face not usable: {r}"),
            (1, None) => "face not usable".into(),
            (n, _) => format!("{n} faces: only the person to enroll may be in view"),
        }
    }

    /// How good a frame is for enrollment: sharper, more confident and more frontal is better.
    fn rank(&self) -> f32 {
        match (&self.quality, self.usable()) {
            (Some(q), true) => {
                q.sharpness.min(2_000.0) * q.detector_score / (1.0 + q.yaw_deg.abs() / 10.0)
            }
            _ => f32::NEG_INFINITY,
        }
    }
}

/// Why a capture found nothing to enroll.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaptureError {
    #[error("the camera delivered no frame within {0:?}")]
    NoFrames(Duration),
    #[error("no usable face in the {frames} frames looked at; the last said: {last}")]
    NoUsableFace { frames: usize, last: String },
}

#[derive(Default)]
struct State {
    watched_until: Option<Instant>,
    latest: Option<Seen>,
}

/// Shared by the recognition workers (writers) and the console (reader).
#[derive(Default)]
pub struct CameraView {
    state: Mutex<State>,
    fresh: Condvar,
}

impl CameraView {
    pub fn new() -> Arc<CameraView> {
        Arc::new(CameraView::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether somebody watches (the workers offer frames only then).
    pub fn watched(&self) -> bool {
        self.lock()
            .watched_until
            .is_some_and(|t| Instant::now() < t)
    }

    /// A worker's newest look. An older frame than the one kept (workers finish out of order)
    /// is ignored.
    pub fn offer(&self, seen: Seen) {
        let mut s = self.lock();
        if s.watched_until.is_none_or(|t| Instant::now() >= t) {
            s.latest = None;
            return;
        }
        if s.latest.as_ref().is_some_and(|l| l.seq >= seen.seq) {
            return;
        }
        s.latest = Some(seen);
        self.fresh.notify_all();
    }

    /// Start or extend a watch; the newest frame, unless it is stale.
    pub fn watch(&self) -> Option<Seen> {
        let mut s = self.lock();
        s.watched_until = Some(Instant::now() + WATCH_FOR);
        s.latest
            .as_ref()
            .filter(|l| l.at.elapsed() < STALE_AFTER)
            .cloned()
    }

    /// Watch the next `frames` frames (at most `within`) and return the best one for
    /// enrollment: one usable face, the sharpest, most confident and most frontal.
    pub fn best_of_next(&self, frames: usize, within: Duration) -> Result<Seen, CaptureError> {
        let deadline = Instant::now() + within;
        let mut s = self.lock();
        s.watched_until = Some(deadline.max(Instant::now() + WATCH_FOR));
        let mut after = s.latest.as_ref().map_or(0, |l| l.seq);
        let mut best: Option<Seen> = None;
        let mut last: Option<Seen> = None;
        let mut looked = 0;
        while looked < frames.max(1) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let (guard, _) = self
                .fresh
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(PoisonError::into_inner);
            s = guard;
            let Some(l) = s.latest.as_ref().filter(|l| l.seq > after) else {
                continue;
            };
            after = l.seq;
            looked += 1;
            if l.usable() && best.as_ref().is_none_or(|b| l.rank() > b.rank()) {
                best = Some(l.clone());
            }
            last = Some(l.clone());
        }
        match (best, last) {
            (Some(b), _) => Ok(b),
            (None, Some(l)) => Err(CaptureError::NoUsableFace {
                frames: looked,
                last: l.advice(),
            }),
            (None, None) => Err(CaptureError::NoFrames(within)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(seq: u64, faces: usize, sharpness: f32, refusal: Option<&str>) -> Seen {
        Seen {
            seq,
            at: Instant::now(),
            image: Arc::new(RgbImage::new(4, 4)),
            faces,
            face: (faces > 0).then_some(BBox {
                x: 1.0,
                y: 1.0,
                w: 2.0,
                h: 2.0,
            }),
            quality: (faces > 0).then_some(Quality {
                detector_score: 0.9,
                face_width_px: 100.0,
                eye_distance_px: 40.0,
                roll_deg: 0.0,
                yaw_deg: 0.0,
                sharpness,
            }),
            refusal: refusal.map(str::to_owned),
        }
    }

    #[test]
    fn nothing_is_kept_while_nobody_watches() {
        let v = CameraView::new();
        assert!(!v.watched());
        v.offer(seen(1, 1, 100.0, None));
        assert!(v.watch().is_none(), "kept without a watch");
        assert!(v.watched());
        v.offer(seen(2, 1, 100.0, None));
        assert_eq!(v.watch().map(|s| s.seq), Some(2));
        // An older frame finished late does not replace the newer one.
        v.offer(seen(1, 1, 100.0, None));
        assert_eq!(v.watch().map(|s| s.seq), Some(2));
    }

    #[test]
    fn capture_takes_the_best_usable_frame_of_the_next_ones() {
        let v = CameraView::new();
        v.watch();
        v.offer(seen(1, 1, 999.0, None)); // before the capture: not taken
        let feeder = {
            let v = Arc::clone(&v);
            std::thread::spawn(move || {
                for (seq, faces, sharp, refusal) in [
                    (2, 1, 50.0, None),
                    (3, 2, 900.0, None),
                    (4, 1, 800.0, Some("head turned too far")),
                    (5, 1, 300.0, None),
                    (6, 0, 0.0, None),
                    (7, 1, 120.0, None),
                ] {
                    std::thread::sleep(Duration::from_millis(30));
                    v.offer(seen(seq, faces, sharp, refusal));
                }
            })
        };
        let best = v.best_of_next(6, Duration::from_secs(5)).unwrap();
        feeder.join().unwrap();
        assert_eq!(best.seq, 5, "the sharpest usable frame of the next six");
    }

    #[test]
    fn capture_says_why_when_no_frame_is_usable() {
        let v = CameraView::new();
        v.watch();
        let feeder = {
            let v = Arc::clone(&v);
            std::thread::spawn(move || {
                for seq in 1..=3 {
                    std::thread::sleep(Duration::from_millis(20));
                    v.offer(seen(seq, 2, 500.0, None));
                }
            })
        };
        let err = v.best_of_next(3, Duration::from_secs(5)).unwrap_err();
        feeder.join().unwrap();
        assert_eq!(
            err,
            CaptureError::NoUsableFace {
                frames: 3,
                last: "2 faces: only the person to enroll may be in view".into()
            }
        );
        let none = CameraView::new().best_of_next(3, Duration::from_millis(100));
        assert_eq!(
            none.unwrap_err(),
            CaptureError::NoFrames(Duration::from_millis(100))
        );
    }
}
