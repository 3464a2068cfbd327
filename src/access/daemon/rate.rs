//! How many frames a second the door looks at (for `/v1/door`, the console and the
//! operator): a moving average of the interval between the capture times of the frames looked
//! at. Capture times, not the times the looks end: two workers finishing together would
//! otherwise read as a burst far faster than the camera.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Weight of the newest interval in the moving average (about the last 10 frames count).
const WEIGHT: f64 = 0.1;
/// No look for this long: the rate is 0 (camera lost or stopped).
const QUIET_AFTER: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Inner {
    last: Option<Instant>,
    /// Seconds between looks, averaged.
    interval_s: Option<f64>,
}

/// Frames looked at per second.
#[derive(Default)]
pub struct FrameRate(Mutex<Inner>);

impl FrameRate {
    /// A frame captured at `now` was looked at. A frame captured before the last one counted
    /// (a slower worker's) is not counted.
    pub fn tick(&self, now: Instant) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(last) = s.last {
            if now <= last {
                return;
            }
            let dt = now.duration_since(last).as_secs_f64();
            s.interval_s = Some(match s.interval_s {
                Some(avg) if dt < QUIET_AFTER.as_secs_f64() => avg + WEIGHT * (dt - avg),
                _ => dt,
            });
        }
        s.last = Some(now);
    }

    /// Frames per second at `now` (0 when nothing was looked at lately).
    pub fn per_second(&self, now: Instant) -> f64 {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match (s.last, s.interval_s) {
            (Some(last), Some(i))
                if i > 0.0 && now.saturating_duration_since(last) < QUIET_AFTER =>
            {
                1.0 / i
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_frame_rate_and_falls_to_zero_when_quiet() {
        let r = FrameRate::default();
        let t0 = Instant::now();
        assert_eq!(r.per_second(t0), 0.0);
        for i in 0..50 {
            r.tick(t0 + Duration::from_millis(100 * i));
        }
        let at = t0 + Duration::from_millis(4_950);
        assert!(
            (r.per_second(at) - 10.0).abs() < 0.01,
            "{}",
            r.per_second(at)
        );
        // Faster frames: the average moves to them within a few tens of frames.
        let t1 = t0 + Duration::from_millis(4_900);
        for i in 1..=60 {
            r.tick(t1 + Duration::from_millis(40 * i));
        }
        let at = t1 + Duration::from_millis(2_410);
        assert!(
            (r.per_second(at) - 25.0).abs() < 1.0,
            "{}",
            r.per_second(at)
        );
        // A slower worker's older frame changes nothing.
        let before = r.per_second(at);
        r.tick(t1 + Duration::from_millis(100));
        assert_eq!(r.per_second(at), before);
        // Nothing for 5 s: 0.
        assert!(r.per_second(at + Duration::from_secs(3)) > 0.0);
        assert_eq!(r.per_second(at + Duration::from_secs(6)), 0.0);
    }
}
