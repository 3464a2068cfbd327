//! The door's infrared check end to end (`[liveness] ir = "enforce"`, `[camera.ir]`): a person
//! enrolled from a deepface photo (`../shared/faces/deepface`), the colour camera replaying a
//! visit of them, and an infrared camera replaying recorded infrared frames.
//!
//! **The infrared frames are a synthetic stand-in, not recordings of a real infrared camera**
//! (no real NIR recording is available to the project; `../shared/faces` has none):
//! - "synthetic IR, live": the colour frame's luminance as a grey picture (a live face reflects
//!   the infrared light and looks like a grey face);
//! - "synthetic IR, screen": the same, with the face and a phone-sized area around it nearly
//!   black (a phone screen gives off almost no near infrared).
//!
//! The passive network is off here (`door = "off"`): this test is about the infrared check.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use facegate::access::daemon::{self, DaemonConfig, IrCamera, Record};
use facegate::access::decision::Refusal;
use facegate::access::policy::Verdict;
use facegate::camera::config::{CameraConfig, SourceKind};
use facegate::camera::ir::IrCameraConfig;
use facegate::camera::{FrameSource, RecordedSource};
use facegate::gallery::Gallery;
use facegate::hw::{Hardware, HwConfig, MemoryHardware, Screen};
use facegate::vision::liveness::ir::IrParams;
use facegate::vision::liveness::{LivenessConfig, Mode};
use facegate::vision::{BBox, VisionParams};
use image::{Rgb, RgbImage};

const THRESHOLD: f32 = 0.4122;
const FPS: f32 = 5.0;

/// The colour frame's luminance, as a grey picture: the "synthetic IR, live" stand-in.
fn synthetic_ir_live(colour: &RgbImage) -> RgbImage {
    RgbImage::from_fn(colour.width(), colour.height(), |x, y| {
        let p = colour.get_pixel(x, y).0;
        let l = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
        Rgb([l.round() as u8; 3])
    })
}

/// The "synthetic IR, screen" stand-in: the live stand-in with a phone-sized area around the
/// face (the face box enlarged 1.5x) nearly black.
fn synthetic_ir_screen(colour: &RgbImage, face: &BBox) -> RgbImage {
    let mut ir = synthetic_ir_live(colour);
    let (cx, cy) = (face.x + face.w / 2.0, face.y + face.h / 2.0);
    let (hw, hh) = (face.w * 0.75, face.h * 0.75);
    for (x, y, p) in ir.enumerate_pixels_mut() {
        let (x, y) = (x as f32, y as f32);
        if (x - cx).abs() <= hw && (y - cy).abs() <= hh {
            // A dark screen: a little sensor noise, no picture.
            let n = ((x as u32 * 7 + y as u32 * 13) % 5) as u8;
            *p = Rgb([6 + n; 3]);
        }
    }
    ir
}

/// An image with its long side made 640 px.
fn door_size(path: &Path) -> RgbImage {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    let s = 640.0 / img.width().max(img.height()) as f32;
    let (w, h) = (
        (img.width() as f32 * s).round() as u32,
        (img.height() as f32 * s).round() as u32,
    );
    image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle)
}

/// Write `frames` as numbered PNGs in a new folder `dir`.
fn write_frames(dir: &Path, frames: &[RgbImage]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (i, f) in frames.iter().enumerate() {
        f.save(dir.join(format!("{i:04}.png"))).unwrap();
    }
    dir.to_owned()
}

fn config() -> DaemonConfig {
    common::replay_config(THRESHOLD, 2500, 200)
}

/// Run the door with the colour frames of `colour` and the infrared camera `ir` until the
/// colour frames end; the records and the hardware's memory.
fn run(
    gallery: Arc<dyn Gallery>,
    rt: &tokio::runtime::Runtime,
    colour: &Path,
    ir: IrCamera,
) -> (Vec<Record>, MemoryHardware) {
    let (hw, mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let camera = RecordedSource::open(colour, FPS, false).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut running = daemon::start_with_ir(
        common::models(),
        VisionParams::default(),
        gallery,
        rt.handle().clone(),
        hw,
        camera,
        None,
        config(),
        Some(ir),
        tx,
    )
    .expect("start the door daemon");
    running.wait_camera_end();
    std::thread::sleep(Duration::from_millis(600));
    running.stop();
    (rx.try_iter().collect(), mem)
}

/// The infrared camera of the configuration `[camera.ir]` with `liveness.ir = "enforce"`.
fn ir_camera(cfg: IrCameraConfig) -> IrCamera {
    let liveness = LivenessConfig {
        door: Mode::Off,
        ir: Mode::Enforce,
        ..LivenessConfig::default()
    };
    liveness.check().unwrap();
    cfg.check().unwrap();
    cfg.check_in_use().unwrap();
    let colour = CameraConfig {
        reopen_min_ms: 100,
        reopen_max_ms: 400,
        ..CameraConfig::default()
    };
    IrCamera {
        source: Box::new(cfg.open(&colour)) as Box<dyn FrameSource>,
        mode: Mode::Enforce,
        params: IrParams::from_config(&liveness, &cfg),
    }
}

fn decisions(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Decision { verdict, .. } => Some(verdict),
            _ => None,
        })
        .filter(|v| v.is_event())
        .map(|v| match v {
            Verdict::Granted { person, .. } => format!("granted {person}"),
            Verdict::Denied {
                person: Some(p),
                reason: Refusal::NotLive { detail: Some(d) },
                ..
            } => format!("{p}: not live ({d})"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_live_visit_seen_in_infrared_opens_and_a_screen_or_a_silent_ir_camera_does_not() {
    let Some(faces) = common::shared_faces() else {
        return;
    };
    let deepface = faces.join("deepface");
    let dir = common::tmpdir("door-ir");
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Enroll df_id01 from their first photo.
    let mut p = common::pipeline();
    let cache = common::open_cache(&dir);
    let photos = common::images_in(&deepface.join("df_id01"));
    common::enroll_photo(&rt, &cache, &mut p, "df_id01", "Person df_id01", &photos[0]);

    // The colour camera: two visits of df_id01 (another photo of them, 10 frames each), each
    // followed by 8 frames of an empty scene.
    let visit = door_size(&photos[1]);
    let face = p.detect(&visit).unwrap().first().expect("a face").bbox;
    let empty = door_size(&common::fixture("no_face_coffee.jpg"));
    let mut colour = Vec::new();
    let mut ir = Vec::new();
    for screen in [false, true] {
        for _ in 0..10 {
            colour.push(visit.clone());
            ir.push(if screen {
                synthetic_ir_screen(&visit, &face)
            } else {
                synthetic_ir_live(&visit)
            });
        }
        for _ in 0..8 {
            colour.push(empty.clone());
            ir.push(synthetic_ir_live(&empty));
        }
    }
    let colour_dir = write_frames(&dir.join("colour"), &colour);
    let ir_dir = write_frames(&dir.join("ir"), &ir);

    // The stand-ins measured as the check sees them: the live one is found and lit, the
    // screen one dark.
    let params = IrParams::default();
    let live = facegate::vision::liveness::ir::check(
        &params,
        &face,
        Some((&ir[0], Duration::ZERO)),
        |i| p.detect(i),
    )
    .unwrap();
    assert!(live.passed(), "{live:?}");
    let screen = facegate::vision::liveness::ir::check(
        &params,
        &face,
        Some((&ir[18], Duration::ZERO)),
        |i| p.detect(i),
    )
    .unwrap();
    assert_eq!(screen.reason(), "face dark in infrared", "{screen:?}");
    eprintln!("synthetic IR, live: {live:?}; screen: {screen:?}");

    // 1. Recorded infrared frames: the live visit opens, the screen visit is refused.
    let ir_cam = ir_camera(IrCameraConfig {
        source: SourceKind::Recorded,
        recorded_dir: ir_dir.clone(),
        recorded_fps: FPS,
        recorded_loop: false,
        ..IrCameraConfig::default()
    });
    let (records, mem) = run(cache.clone() as Arc<dyn Gallery>, &rt, &colour_dir, ir_cam);
    let got = decisions(&records);
    assert_eq!(
        got,
        [
            "granted df_id01",
            "df_id01: not live (face dark in infrared)"
        ],
        "{records:#?}"
    );
    let unlocks = mem.relay.edges().iter().filter(|e| e.high).count();
    assert_eq!(unlocks, 1, "the door opened for the live visit only");
    let screens = mem.screens();
    assert!(
        screens.iter().any(|s| matches!(s, Screen::Denied { reason }
            if reason == "not live (face dark in infrared)")),
        "{screens:?}"
    );

    // Audited (and sent to the event sinks: the same event) with the reason.
    let events = common::audited(&dir, &records);
    let refused: Vec<&str> = events
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .filter(|r| r.contains("infrared"))
        .collect();
    assert_eq!(
        refused,
        ["not live (face dark in infrared)"],
        "{:#?}",
        events
    );

    // 2. The infrared camera configured but unplugged (no such device): the same live visit is
    //    refused, and the display says why.
    let live_only = write_frames(&dir.join("colour-live"), &colour[..18]);
    let ir_cam = ir_camera(IrCameraConfig {
        source: SourceKind::V4l2,
        device: "/dev/facegate-test-no-ir-camera".into(),
        ..IrCameraConfig::default()
    });
    let (records, mem) = run(cache.clone() as Arc<dyn Gallery>, &rt, &live_only, ir_cam);
    assert_eq!(
        decisions(&records),
        ["df_id01: not live (no infrared picture)"],
        "{records:#?}"
    );
    assert_eq!(mem.relay.edges().iter().filter(|e| e.high).count(), 0);
    assert!(
        mem.screens()
            .iter()
            .any(|s| matches!(s, Screen::Denied { reason }
            if reason == "not live (no infrared picture)")),
        "{:?}",
        mem.screens()
    );

    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}
