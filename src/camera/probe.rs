//! Checking the configured camera once (`facegate doctor`): open it as `facegate run` would,
//! wait for one frame within a time limit, and say what came.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{CameraConfig, CameraError, FrameSource};

/// The first frame of a camera, as [`first_frame`] saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstFrame {
    /// The source's own description ("V4L2 /dev/video0 (USB2.0 Camera) 1280x720 MJPG @ 30 fps").
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// From asking to open the camera to holding the decoded frame.
    pub took: Duration,
    /// Unusable frames before it (a damaged JPEG).
    pub bad_frames: u32,
}

/// Frames a probe skips over before giving up on a camera that only sends damaged ones.
const MAX_BAD_FRAMES: u32 = 5;

/// Open the source `cfg` names (once, no reopening) and wait for its first usable frame, at
/// most `timeout` in all. The camera is closed again before this returns, except after a
/// timeout, when the thread still waiting on it is left to finish on its own.
pub fn first_frame(cfg: &CameraConfig, timeout: Duration) -> Result<FirstFrame, CameraError> {
    let cfg = cfg.clone();
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::Builder::new()
        .name("camera-probe".into())
        .spawn(move || {
            let result = super::open_from_config(&cfg).and_then(|mut source| {
                let mut bad_frames = 0;
                loop {
                    match source.next_frame() {
                        Ok(frame) => {
                            return Ok(FirstFrame {
                                source: source.describe(),
                                width: frame.image.width(),
                                height: frame.image.height(),
                                took: start.elapsed(),
                                bad_frames,
                            });
                        }
                        Err(e) if e.is_frame_error() && bad_frames < MAX_BAD_FRAMES => {
                            bad_frames += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
            });
            let _ = tx.send(result);
        })
        .map_err(|e| CameraError::Device {
            device: "camera probe thread".into(),
            reason: format!("cannot start: {e}"),
        })?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(CameraError::Device {
            device: "the camera".into(),
            reason: format!(
                "no frame within {:.0} s (the camera opened but sends nothing, or opening hangs)",
                timeout.as_secs_f64()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::SourceKind;

    #[test]
    fn the_bundled_frames_give_a_first_frame_and_a_missing_folder_is_permanent() {
        let cfg = CameraConfig {
            source: SourceKind::Recorded,
            ..CameraConfig::default()
        };
        let f = first_frame(&cfg, Duration::from_secs(20)).unwrap();
        assert!(f.width > 0 && f.height > 0, "{f:?}");
        assert!(f.source.contains("recorded"), "{}", f.source);

        let cfg = CameraConfig {
            source: SourceKind::Recorded,
            recorded_dir: "/no/such/facegate/frames".into(),
            ..CameraConfig::default()
        };
        let e = first_frame(&cfg, Duration::from_secs(20)).unwrap_err();
        assert!(e.is_permanent(), "{e}");
        assert!(e.to_string().contains("/no/such/facegate/frames"), "{e}");
    }
}
