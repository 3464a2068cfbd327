use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

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
