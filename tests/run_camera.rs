//! Camera configuration errors are not retried forever: `facegate run` refuses them at
//! start-up (the real binary), and a door whose camera turns out misconfigured later stops
//! recognising, says so on the display, and keeps its exit button working.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use facegate::access::daemon::{self, DaemonConfig};
use facegate::access::door::DoorConfig;
use facegate::access::policy::PolicyConfig;
use facegate::camera::{Backoff, CameraError, CameraStatus, Frame, FrameSource, Reopening};
use facegate::gallery::{Cache, Gallery, ModelTag};
use facegate::hw::{Hardware, HwConfig, Screen};
use facegate::vision::VisionParams;

fn run_door(args: &[&str]) -> (Option<i32>, String, Duration) {
    let dir = common::tmpdir("run-camera");
    let config = common::gallery_config(&dir, "config.toml", &dir.join("gallery"));
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--no-hardware"])
        .arg(dir.join("status.png"))
        .args(args)
        .env("FACEGATE_MODELS", common::repo().join("models"))
        .output()
        .expect("run facegate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        start.elapsed(),
    )
}

#[test]
fn run_refuses_a_frames_folder_that_does_not_exist_at_once() {
    let dir = common::tmpdir("run-noframes");
    let missing = dir.join("no/such/dir");
    let (code, stderr, took) = run_door(&["--frames", missing.to_str().unwrap(), "--once"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("--frames"), "says what to fix: {stderr}");
    // Refused before the models are loaded or anything is retried.
    assert!(took < Duration::from_secs(10), "{took:?}");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "no frames here").unwrap();
    let (code, stderr, _) = run_door(&["--frames", empty.to_str().unwrap(), "--once"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no images"), "{stderr}");
}

/// A stand-in camera: `frames` copies of one picture, then the error given.
struct Then {
    frames: u32,
    picture: image::RgbImage,
    error: CameraError,
}

impl FrameSource for Then {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        if self.frames == 0 {
            return Err(self.error.clone());
        }
        self.frames -= 1;
        std::thread::sleep(Duration::from_millis(20));
        Ok(Frame {
            image: self.picture.clone(),
            captured: Instant::now(),
            seq: 0,
        })
    }
    fn describe(&self) -> String {
        "stand-in camera".into()
    }
}

#[test]
fn a_camera_misconfigured_while_running_stops_recognition_but_not_the_door() {
    let dir = common::tmpdir("run-misconfigured");
    let picture = facegate::vision::frame::read_image(
        &common::fixture("no_face_coffee.jpg"),
        facegate::vision::frame::DEFAULT_MAX_PIXELS,
    )
    .unwrap();
    // First opening: 3 frames, then the camera is unplugged; the reopening then finds the
    // device offering no format facegate reads (a configuration error).
    let mut opens = 0;
    let camera = Reopening::new(
        "stand-in camera",
        Backoff::new(Duration::from_millis(5), Duration::from_millis(5)),
        move || {
            opens += 1;
            if opens == 1 {
                Ok(Box::new(Then {
                    frames: 3,
                    picture: picture.clone(),
                    error: CameraError::Device {
                        device: "/dev/video0".into(),
                        reason: "capture failed: No such device (os error 19)".into(),
                    },
                }) as Box<dyn FrameSource>)
            } else {
                Err(CameraError::NoFormat {
                    device: "/dev/video0 (unicam)".into(),
                    offered: vec!["pRAA".into()],
                })
            }
        },
    );
    let status = camera.status();
    let cache = Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cfg = HwConfig {
        debounce_ms: 0,
        ..HwConfig::default()
    };
    let (hw, mem) = Hardware::memory(&cfg).unwrap();
    let (tx, _rx) = mpsc::channel();
    let gallery: Arc<dyn Gallery> = cache;
    let running = daemon::start(
        common::models(),
        VisionParams::default(),
        gallery,
        rt.handle().clone(),
        hw,
        camera,
        Some(status.clone()),
        DaemonConfig {
            policy: PolicyConfig {
                same_face: 0.41,
                frames: 3,
                cooldown_ms: 1000,
                anti_passback_ms: 0,
            },
            operating: std::sync::Arc::new(facegate::access::decision::OperatingPoint::fixed(
                0.41, 0.0,
            )),
            door: DoorConfig {
                unlock_ms: 300,
                held_open_ms: 30_000,
            },
            top_k: 3,
            display_hold_ms: 100,
            workers: 1,
            save_face_crops: false,
            track: facegate::access::daemon::TrackConfig::default(),
        },
        tx,
    )
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    while !status.get().is_misconfigured() {
        assert!(Instant::now() < deadline, "status: {:?}", status.get());
        std::thread::sleep(Duration::from_millis(10));
    }
    match status.get() {
        CameraStatus::Misconfigured { reason, advice } => {
            assert!(
                reason.contains("/dev/video0") && reason.contains("pRAA"),
                "{reason}"
            );
            assert!(advice.contains("camera.device"), "{advice}");
        }
        other => panic!("{other:?}"),
    }
    // The display says the camera does not work.
    while !mem.screens().contains(&Screen::CameraLost) {
        assert!(Instant::now() < deadline, "screens: {:?}", mem.screens());
        std::thread::sleep(Duration::from_millis(10));
    }
    // The door goes on: not finished, and the exit button still unlocks it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!running.camera_finished());
    assert!(!mem.relay_unlocked());
    mem.set_exit_pressed(true);
    while !mem.relay_unlocked() {
        assert!(Instant::now() < deadline, "the exit button did not unlock");
        std::thread::sleep(Duration::from_millis(5));
    }
    mem.set_exit_pressed(false);
    running.stop();
    assert!(!mem.relay_unlocked(), "stopped locked");
}
