//! A recorded camera: a folder of images replayed in file-name order at a set rate, looping or
//! not. It stands in for a camera on machines without one, and drives the end-to-end tests.
//!
//! A file that cannot be decoded costs its own frame slot: `next_frame` returns a
//! [`CameraError::BadFrame`] naming the file, and the next call goes on with the next file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CameraError, Frame, FrameSource, MAX_FRAME_PIXELS, StopSignal};
use crate::vision::frame::read_image;

/// File extensions replayed (case-insensitive); other files in the folder are ignored.
pub const EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "bmp", "pgm", "ppm", "pnm"];

/// Time as the replay sees it: real time, or a fake one in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    /// Sleep until `deadline`, or until `stop` is raised (then return false).
    fn sleep_until(&self, deadline: Instant, stop: Option<&StopSignal>) -> bool;
}

/// The system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant, stop: Option<&StopSignal>) -> bool {
        let d = deadline.saturating_duration_since(Instant::now());
        match stop {
            Some(s) => s.sleep(d),
            None => {
                std::thread::sleep(d);
                true
            }
        }
    }
}

pub struct RecordedSource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    next: usize,
    looping: bool,
    period: Duration,
    /// When the next frame is due (None before the first).
    due: Option<Instant>,
    seq: u64,
    clock: Arc<dyn Clock>,
    stop: Option<StopSignal>,
}

impl RecordedSource {
    /// Replay the images in `dir` (or the single image file `dir`) at `fps` frames per second.
    pub fn open(dir: &Path, fps: f32, looping: bool) -> Result<RecordedSource, CameraError> {
        RecordedSource::with_clock(dir, fps, looping, Arc::new(SystemClock))
    }

    pub fn with_clock(
        dir: &Path,
        fps: f32,
        looping: bool,
        clock: Arc<dyn Clock>,
    ) -> Result<RecordedSource, CameraError> {
        let fail = |reason: String| CameraError::Recorded {
            dir: dir.to_owned(),
            reason,
        };
        if !(fps.is_finite() && fps > 0.0) {
            return Err(fail(format!("frame rate {fps} is not a positive number")));
        }
        let files = list_images(dir).map_err(fail)?;
        tracing::info!(
            dir = %dir.display(),
            frames = files.len(),
            fps,
            looping,
            "recorded camera"
        );
        Ok(RecordedSource {
            dir: dir.to_owned(),
            files,
            next: 0,
            looping,
            period: Duration::from_secs_f64(1.0 / f64::from(fps)),
            due: None,
            seq: 0,
            clock,
            stop: None,
        })
    }

    /// The files replayed, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Wait until the next frame is due. Frames are due one period apart; a consumer that
    /// fell more than a period behind restarts the schedule rather than getting a burst.
    fn pace(&mut self) -> Result<Instant, CameraError> {
        let now = self.clock.now();
        let due = match self.due {
            None => now,
            Some(d) if d + self.period < now => now,
            Some(d) => d,
        };
        if due > now && !self.clock.sleep_until(due, self.stop.as_ref()) {
            return Err(CameraError::Stopped);
        }
        self.due = Some(due + self.period);
        Ok(due)
    }
}

/// What [`check_folder`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderCheck {
    /// Image files replayed.
    pub images: usize,
    /// How many of them were decoded (all, up to the limit given).
    pub checked: usize,
    /// Files that cannot be decoded, with the reason: each costs a frame in the replay.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Decode up to `limit` of the images a replay of `dir` would show. A folder that does not
/// exist or holds no image is the same configuration error [`RecordedSource::open`] gives.
pub fn check_folder(dir: &Path, limit: usize) -> Result<FolderCheck, CameraError> {
    let files = list_images(dir).map_err(|reason| CameraError::Recorded {
        dir: dir.to_owned(),
        reason,
    })?;
    let mut unreadable = Vec::new();
    let checked = files.len().min(limit);
    for f in &files[..checked] {
        if let Err(e) = read_image(f, MAX_FRAME_PIXELS) {
            unreadable.push((f.clone(), e.to_string()));
        }
    }
    Ok(FolderCheck {
        images: files.len(),
        checked,
        unreadable,
    })
}

/// The images in `dir` sorted by file name, or `dir` itself if it is an image file.
fn list_images(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let is_image = |p: &Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
    };
    if dir.is_file() {
        return if is_image(dir) {
            Ok(vec![dir.to_owned()])
        } else {
            Err(format!(
                "not an image file (expected one of: {})",
                EXTENSIONS.join(", ")
            ))
        };
    }
    if !dir.exists() {
        return Err("the folder does not exist".into());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the folder: {e}"))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if files.is_empty() {
        return Err(format!(
            "no images in the folder (looked for {})",
            EXTENSIONS.join(", ")
        ));
    }
    Ok(files)
}

impl FrameSource for RecordedSource {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        if self.next >= self.files.len() {
            if !self.looping {
                return Err(CameraError::EndOfStream {
                    what: format!("recorded frames {}", self.dir.display()),
                });
            }
            self.next = 0;
        }
        let captured = self.pace()?;
        let path = &self.files[self.next];
        self.next += 1;
        self.seq += 1;
        let image = read_image(path, MAX_FRAME_PIXELS).map_err(|e| {
            tracing::debug!(file = %path.display(), error = %e, "recorded frame unusable");
            let what = path.display().to_string();
            let msg = e.to_string();
            let reason = msg
                .strip_prefix(&format!("{what}: "))
                .map_or_else(|| msg.clone(), str::to_owned);
            CameraError::BadFrame { what, reason }
        })?;
        Ok(Frame {
            image,
            captured,
            seq: self.seq,
        })
    }

    fn describe(&self) -> String {
        format!(
            "recorded {} ({} frames at {:.1} fps{})",
            self.dir.display(),
            self.files.len(),
            1.0 / self.period.as_secs_f64(),
            if self.looping { ", looping" } else { "" }
        )
    }

    fn attach_stop(&mut self, stop: &StopSignal) {
        self.stop = Some(stop.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock that only moves when slept on (or pushed by the test).
    struct FakeClock {
        start: Instant,
        offset: Mutex<Duration>,
        sleeps: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> Arc<FakeClock> {
            Arc::new(FakeClock {
                start: Instant::now(),
                offset: Mutex::new(Duration::ZERO),
                sleeps: Mutex::new(Vec::new()),
            })
        }
        fn advance(&self, d: Duration) {
            *self.offset.lock().unwrap() += d;
        }
        fn sleeps(&self) -> Vec<Duration> {
            self.sleeps.lock().unwrap().clone()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + *self.offset.lock().unwrap()
        }
        fn sleep_until(&self, deadline: Instant, _stop: Option<&StopSignal>) -> bool {
            let now = self.now();
            self.sleeps.lock().unwrap().push(deadline - now);
            *self.offset.lock().unwrap() = deadline - self.start;
            true
        }
    }

    /// A fresh folder with images of widths 10 (a.png), 20 (b.jpg), 30 (c.png), written in
    /// another order, plus a file that is not an image.
    fn folder(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("facegate-recorded-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, w) in [("c.png", 30), ("a.png", 10), ("b.jpg", 20)] {
            image::RgbImage::from_pixel(w, 8, image::Rgb([200, 100, 50]))
                .save(dir.join(file))
                .unwrap();
        }
        std::fs::write(dir.join("notes.txt"), "not a frame").unwrap();
        dir
    }

    fn width(r: Result<Frame, CameraError>) -> u32 {
        r.unwrap().image.width()
    }

    #[test]
    fn a_folder_check_counts_unreadable_images_and_refuses_a_missing_or_empty_folder() {
        let dir = folder("check");
        std::fs::write(dir.join("d.jpg"), b"not a jpeg").unwrap();
        let c = check_folder(&dir, 100).unwrap();
        assert_eq!((c.images, c.checked), (4, 4));
        assert_eq!(c.unreadable.len(), 1, "{c:?}");
        assert!(c.unreadable[0].0.ends_with("d.jpg"));
        assert_eq!(check_folder(&dir, 2).unwrap().checked, 2);

        let e = check_folder(&dir.join("nope"), 10).unwrap_err();
        assert!(e.is_permanent(), "{e}");
        assert!(e.to_string().contains("does not exist"), "{e}");
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let e = RecordedSource::open(&empty, 10.0, true).err().unwrap();
        assert!(
            e.is_permanent() && e.to_string().contains("no images"),
            "{e}"
        );
    }

    #[test]
    fn frames_come_in_file_name_order_and_loop() {
        let dir = folder("order");
        let mut src = RecordedSource::with_clock(&dir, 100.0, true, FakeClock::new()).unwrap();
        assert_eq!(src.files().len(), 3, "{:?}", src.files());
        let widths: Vec<u32> = (0..7).map(|_| width(src.next_frame())).collect();
        assert_eq!(widths, [10, 20, 30, 10, 20, 30, 10]);
        assert_eq!(src.next_frame().unwrap().seq, 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_loop_the_recording_ends() {
        let dir = folder("once");
        let mut src = RecordedSource::with_clock(&dir, 100.0, false, FakeClock::new()).unwrap();
        for w in [10, 20, 30] {
            assert_eq!(width(src.next_frame()), w);
        }
        for _ in 0..2 {
            match src.next_frame() {
                Err(CameraError::EndOfStream { what }) => assert!(what.contains("once"), "{what}"),
                other => panic!("expected the end, got {other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn frames_are_paced_at_the_set_rate_without_bursts() {
        let dir = folder("pace");
        let clock = FakeClock::new();
        let mut src = RecordedSource::with_clock(&dir, 4.0, true, clock.clone()).unwrap();
        let times: Vec<Instant> = (0..4).map(|_| src.next_frame().unwrap().captured).collect();
        for pair in times.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(250));
        }
        // The first frame is due at once; each later one after a 250 ms sleep.
        assert_eq!(clock.sleeps(), vec![Duration::from_millis(250); 3]);
        // A consumer 1 s late gets one frame now, not four at once, and the schedule restarts.
        clock.advance(Duration::from_secs(1));
        let late = src.next_frame().unwrap().captured;
        assert_eq!(late, clock.now());
        assert_eq!(clock.sleeps().len(), 3, "no sleep for a late frame");
        let next = src.next_frame().unwrap().captured;
        assert_eq!(next - late, Duration::from_millis(250));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn real_time_pacing_is_not_faster_than_the_rate() {
        let dir = folder("realtime");
        let mut src = RecordedSource::open(&dir, 50.0, true).unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            src.next_frame().unwrap();
        }
        // 6 frames at 50 fps: the first at once, then 5 periods of 20 ms. Sleeps never end
        // early, so the lower bound is safe; the upper one only catches a hang.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_secs(30), "{took:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_file_is_a_frame_error_naming_it_and_the_replay_goes_on() {
        let dir = folder("corrupt");
        std::fs::write(
            dir.join("b2_broken.jpg"),
            b"\xff\xd8\xff\xe0 not really a jpeg",
        )
        .unwrap();
        let clock = FakeClock::new();
        let mut src = RecordedSource::with_clock(&dir, 10.0, true, clock.clone()).unwrap();
        assert_eq!(width(src.next_frame()), 10);
        assert_eq!(width(src.next_frame()), 20);
        let e = src.next_frame().unwrap_err();
        assert!(e.is_frame_error(), "{e:?}");
        assert!(e.to_string().contains("b2_broken.jpg"), "{e}");
        assert_eq!(e.to_string().matches("b2_broken.jpg").count(), 1, "{e}");
        assert_eq!(width(src.next_frame()), 30);
        // The broken file kept its time slot: 4 frames, 3 periods.
        assert_eq!(clock.sleeps().len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_missing_and_single_file_sources() {
        let dir = folder("empty");
        for f in ["a.png", "b.jpg", "c.png"] {
            std::fs::remove_file(dir.join(f)).unwrap();
        }
        let e = RecordedSource::open(&dir, 10.0, true).err().unwrap();
        assert!(
            e.to_string().contains("no images") && e.to_string().contains("empty"),
            "{e}"
        );
        let e = RecordedSource::open(&dir.join("nope"), 10.0, true)
            .err()
            .unwrap();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = RecordedSource::open(&dir.join("notes.txt"), 10.0, true)
            .err()
            .unwrap();
        assert!(e.to_string().contains("not an image"), "{e}");
        let e = RecordedSource::open(&dir, 0.0, true).err().unwrap();
        assert!(e.to_string().contains("frame rate"), "{e}");
        image::RgbImage::new(12, 12)
            .save(dir.join("one.png"))
            .unwrap();
        let mut src = RecordedSource::open(&dir.join("one.png"), 100.0, true).unwrap();
        assert_eq!(width(src.next_frame()), 12);
        assert_eq!(width(src.next_frame()), 12);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
