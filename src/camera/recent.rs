//! The newest frames of a second camera (the infrared one, `liveness.ir`), kept by capture
//! time, so that a frame of the door's colour camera can be paired with the second camera's
//! frame taken nearest to it. The second camera runs in its own capture thread
//! ([`spawn_capture`], the same as the first camera's); a collector thread moves each frame into
//! a short ring ([`RECENT_FRAMES`] frames), dropping the oldest.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use image::RgbImage;

use super::{CameraError, CaptureHandle, FrameSource, lock, spawn_capture};

/// Frames kept (at 30 fps, half a second).
pub const RECENT_FRAMES: usize = 16;

/// One frame of the second camera.
#[derive(Debug, Clone)]
pub struct TimedFrame {
    pub image: Arc<RgbImage>,
    pub captured: Instant,
    pub seq: u64,
}

#[derive(Default)]
struct Ring {
    frames: VecDeque<TimedFrame>,
    /// Why the second camera's stream ended, once it has.
    ended: Option<CameraError>,
}

/// The newest frames of a camera, shared by the threads that read them.
#[derive(Clone)]
pub struct RecentFrames {
    ring: Arc<(Mutex<Ring>, Condvar)>,
    keep: usize,
}

impl RecentFrames {
    /// An empty ring keeping the newest `keep` frames (at least 1).
    pub fn new(keep: usize) -> RecentFrames {
        RecentFrames {
            ring: Arc::default(),
            keep: keep.max(1),
        }
    }

    /// Add a frame, dropping the oldest one beyond `keep`.
    pub fn push(&self, frame: TimedFrame) {
        let mut r = lock(&self.ring.0);
        if r.frames.len() >= self.keep {
            r.frames.pop_front();
        }
        r.frames.push_back(frame);
        drop(r);
        self.ring.1.notify_all();
    }

    /// The frame captured nearest to `at` and how far from it (either side), if any frame is
    /// kept.
    pub fn nearest(&self, at: Instant) -> Option<(TimedFrame, Duration)> {
        nearest_in(&lock(&self.ring.0), at)
    }

    /// [`nearest`](Self::nearest), once a frame captured at or after `at` is kept, or `wait`
    /// after `at` at the latest (the frame taken at the same time as `at` may still be on its
    /// way), or at once when the stream has ended.
    pub fn nearest_waiting(&self, at: Instant, wait: Duration) -> Option<(TimedFrame, Duration)> {
        let deadline = at + wait;
        let mut r = lock(&self.ring.0);
        loop {
            let now = Instant::now();
            if r.ended.is_some()
                || now >= deadline
                || r.frames.back().is_some_and(|f| f.captured >= at)
            {
                return nearest_in(&r, at);
            }
            r = self
                .ring
                .1
                .wait_timeout(r, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Why the camera's stream ended, once it has (a camera that is being reopened has not
    /// ended: its frames only grow old).
    pub fn ended(&self) -> Option<CameraError> {
        lock(&self.ring.0).ended.clone()
    }

    fn end(&self, e: CameraError) {
        lock(&self.ring.0).ended = Some(e);
        self.ring.1.notify_all();
    }
}

fn nearest_in(r: &Ring, at: Instant) -> Option<(TimedFrame, Duration)> {
    let skew = |f: &TimedFrame| {
        if f.captured >= at {
            f.captured - at
        } else {
            at - f.captured
        }
    };
    r.frames
        .iter()
        .min_by_key(|f| skew(f))
        .map(|f| (f.clone(), skew(f)))
}

/// The capture and collector threads of a [`RecentFrames`].
pub struct RecentCapture {
    capture: Option<CaptureHandle>,
    collector: Option<JoinHandle<()>>,
}

impl RecentCapture {
    /// Stop both threads and wait for them.
    pub fn stop(mut self) {
        if let Some(c) = self.capture.take() {
            c.join();
        }
        if let Some(t) = self.collector.take()
            && t.join().is_err()
        {
            tracing::error!("second camera's collector thread panicked");
        }
    }
}

/// Run `source` in a capture thread of its own and keep its newest `keep` frames.
pub fn spawn_recent<S: FrameSource + 'static>(
    source: S,
    keep: usize,
) -> Result<(RecentCapture, RecentFrames), CameraError> {
    let describe = source.describe();
    let (capture, rx) = spawn_capture(source)?;
    let recent = RecentFrames::new(keep);
    let ring = recent.clone();
    let collector = std::thread::Builder::new()
        .name("camera-2".into())
        .spawn(move || {
            loop {
                match rx.recv() {
                    Ok(f) => ring.push(TimedFrame {
                        image: Arc::new(f.image),
                        captured: f.captured,
                        seq: f.seq,
                    }),
                    Err(e) => {
                        tracing::info!(camera = %describe, reason = %e, "second camera ended");
                        ring.end(e);
                        return;
                    }
                }
            }
        })
        .map_err(|e| CameraError::Device {
            device: "second camera's collector thread".into(),
            reason: format!("cannot start: {e}"),
        })?;
    Ok((
        RecentCapture {
            capture: Some(capture),
            collector: Some(collector),
        },
        recent,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(captured: Instant, seq: u64) -> TimedFrame {
        TimedFrame {
            image: Arc::new(RgbImage::new(1, 1)),
            captured,
            seq,
        }
    }

    #[test]
    fn the_nearest_frame_either_side_and_only_the_newest_are_kept() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let r = RecentFrames::new(3);
        assert!(r.nearest(t0).is_none());
        for i in 0..5u64 {
            r.push(frame(t0 + ms(100 * i), i));
        }
        // Frames 2, 3, 4 are kept (200, 300, 400 ms).
        let (f, skew) = r.nearest(t0 + ms(260)).unwrap();
        assert_eq!((f.seq, skew), (3, ms(40)));
        let (f, skew) = r.nearest(t0 + ms(230)).unwrap();
        assert_eq!((f.seq, skew), (2, ms(30)));
        // Frame 0 was dropped: the nearest to 0 ms is 200 ms away.
        let (f, skew) = r.nearest(t0).unwrap();
        assert_eq!((f.seq, skew), (2, ms(200)));
        let (f, skew) = r.nearest(t0 + ms(1000)).unwrap();
        assert_eq!((f.seq, skew), (4, ms(600)));
    }

    #[test]
    fn a_frame_still_on_its_way_is_waited_for_within_the_limit() {
        let ms = Duration::from_millis;
        let r = RecentFrames::new(4);
        let t0 = Instant::now();
        r.push(frame(t0, 1));
        let at = t0 + ms(100);
        let pusher = {
            let r = r.clone();
            std::thread::spawn(move || {
                std::thread::sleep(ms(30));
                r.push(frame(at + ms(5), 2));
            })
        };
        // The frame 5 ms after `at` arrives within the 2 s allowed: it is the nearest.
        let (f, skew) = r.nearest_waiting(at, ms(2000)).unwrap();
        assert_eq!((f.seq, skew), (2, ms(5)));
        pusher.join().unwrap();
        // Nothing newer comes: after the wait, the nearest kept.
        // (After the newest frame, at +105 ms.)
        let late = at + ms(200);
        let (f, _) = r.nearest_waiting(late, ms(20)).unwrap();
        assert_eq!(f.seq, 2);
        assert!(Instant::now() >= late + ms(20));
    }

    #[test]
    fn a_finished_source_is_reported() {
        struct Two(u64);
        impl FrameSource for Two {
            fn next_frame(&mut self) -> Result<super::super::Frame, CameraError> {
                if self.0 == 2 {
                    return Err(CameraError::EndOfStream { what: "two".into() });
                }
                self.0 += 1;
                Ok(super::super::Frame {
                    image: RgbImage::new(2, 2),
                    captured: Instant::now(),
                    seq: self.0,
                })
            }
            fn describe(&self) -> String {
                "two frames".into()
            }
        }
        let (capture, recent) = spawn_recent(Two(0), 4).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while recent.ended().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(
            recent.ended(),
            Some(CameraError::EndOfStream { .. })
        ));
        assert!(recent.nearest(Instant::now()).is_some());
        capture.stop();
    }
}
