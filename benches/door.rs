//! The door loop under load: frames per second sustained, and latency from frame capture to
//! the relay edge, with a 10k-person gallery. A bench binary (not criterion: the daemon's
//! threads run for seconds at a time and the figures are rates and percentiles).
//!
//!   cargo bench --bench door                          # 20 s per scenario
//!   FACEGATE_BENCH_SECS=60 cargo bench --bench door   # longer runs
//!   FACEGATE_BENCH_SINKS=only cargo bench --bench door   # only the sinks off / on pair
//!   FACEGATE_BENCH_ONLY=tracker cargo bench --bench door # only the face tracker off / on pairs
//!
//! With `FACEGATE_MQTT_URL` set (a broker, e.g. `scripts/mosquitto start`), one scenario runs
//! twice, the event sinks off and on: MQTT to that broker plus a webhook to a dead receiver
//! (nothing listens on its port; it retries with backoff), both behind the records thread as
//! in `facegate run`, to show that a slow or dead sink does not delay the relay.
//!
//! What runs is the daemon of `facegate run` (`access::daemon::start`): the recorded camera
//! (JPEG decode on the capture thread, newest-frame mailbox), the default vision settings and
//! models, the sled cache with 10 000 synthetic persons plus the two people of the bundled
//! frames (`frames/`), the face tracker (on unless the `tracker` column says off), the policy
//! (3 agreeing frames, no cooldown so every third frame of a face is a grant), the door thread and the in-memory relay pin, a stand-in for GPIO that
//! records every edge. The relay latency is measured by the door thread from the capture
//! instant of the deciding frame to the relay write.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use facegate::access::daemon::{self, DaemonConfig, Record, TrackConfig};
use facegate::access::door::{DoorConfig, DoorEvent, UnlockBy};
use facegate::access::policy::PolicyConfig;
use facegate::app::sink::{EventSink, FanOut};
use facegate::camera::RecordedSource;
use facegate::config::Config;
use facegate::events_out::{DoorSide, EventsOut, MqttConfig, Secret, WebhooksConfig};
use facegate::gallery::{Cache, Gallery, ModelTag, NewPerson};
use facegate::hw::{Hardware, HwConfig};
use facegate::vision::{Models, Pipeline, frame};

const GALLERY: usize = 10_000;

struct Outcome {
    fps: f64,
    /// Share of the decided frames' faces that were embedded (the rest reused by the tracker).
    embedded: f64,
    camera_fps: f64,
    grants: usize,
    relay_ms: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: then run briefly
    // as a smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("FACEGATE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 20.0 } else { 2.0 });
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = Config::default();
    let models = Models::load(
        &repo.join("models"),
        &config.vision.detector,
        config.vision.embedder_name(),
    )
    .expect("the bundled models load");
    let threshold = models
        .recommended_threshold()
        .expect("the default embedder's card has a threshold");
    let params = config.vision.params();

    let dir = std::env::temp_dir().join(format!("facegate-bench-door-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let cache = Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new(&models.embedder.name, models.dim()),
            &facegate::crypto::DeviceKey::generate().expect("key"),
        )
        .expect("gallery"),
    );
    let t = Instant::now();
    facegate::gallery::synth::fill(&cache, GALLERY, 42).expect("synthetic gallery");
    let mut pipeline = Pipeline::new(&models, params.clone()).expect("pipeline");
    let frames = repo.join("frames");
    for (id, photo) in [
        ("person-a", "01_person_a.jpg"),
        ("person-b", "09_person_b.jpg"),
    ] {
        let img = frame::read_image(&frames.join(photo), frame::DEFAULT_MAX_PIXELS).expect(photo);
        let face = pipeline
            .analyse(&img)
            .expect(photo)
            .into_iter()
            .next()
            .expect("a face");
        let e = face.embedding.expect("an embedding");
        rt.block_on(async {
            cache
                .create_person(NewPerson {
                    id: Some(id.into()),
                    name: id.into(),
                    ..NewPerson::default()
                })
                .await
                .expect("person");
            cache.add_templates(id, vec![e.0]).await.expect("template");
        });
    }
    drop(pipeline);
    println!(
        "gallery: {} templates ({} synthetic + 2 people from frames/) in {:.1} s; {} s per scenario; models {} + {}",
        cache.template_count(),
        GALLERY,
        t.elapsed().as_secs_f64(),
        secs,
        models.detector.name,
        models.embedder.name
    );

    // Scenario folders: person A alone (a face in every frame, the costly case), and the
    // bundled visits (faces, empty scene, two people), each bundled frame held for 6 camera
    // frames (0.2 s at 30 fps) so that a visit lasts long enough to be decided.
    let face_only = dir.join("face-only");
    let visits = dir.join("visits");
    std::fs::create_dir_all(&face_only).expect("mkdir");
    std::fs::create_dir_all(&visits).expect("mkdir");
    for i in 1..=5 {
        let name = format!("0{i}_person_a.jpg");
        std::fs::copy(frames.join(&name), face_only.join(&name)).expect("copy");
    }
    // Person A walking up to the camera: each frame a 2% tighter crop of the photo around the
    // face, resized back to the photo's size, so the face grows from frame to frame (30
    // frames, eyes 1.8x further apart at the end, then the loop starts over: a new visit).
    // Unlike the copies above, no two frames are the same and the face is seen better and
    // better: the tracker's case of a face that needs embedding again.
    let approach = dir.join("approach");
    std::fs::create_dir_all(&approach).expect("mkdir");
    {
        let img = frame::read_image(&frames.join("01_person_a.jpg"), frame::DEFAULT_MAX_PIXELS)
            .expect("01_person_a.jpg");
        let mut p = Pipeline::new(&models, params.clone()).expect("pipeline");
        let det = p
            .detect(&img)
            .expect("detect")
            .into_iter()
            .next()
            .expect("a face");
        let c = det.bbox.centre();
        let (w, h) = (img.width() as f32, img.height() as f32);
        for k in 0..30 {
            let s = 1.02f32.powi(k);
            let (cw, ch) = (w / s, h / s);
            let x = (c.x - cw / 2.0).clamp(0.0, w - cw);
            let y = (c.y - ch / 2.0).clamp(0.0, h - ch);
            let crop = image::imageops::crop_imm(&img, x as u32, y as u32, cw as u32, ch as u32)
                .to_image();
            let out = image::imageops::resize(
                &crop,
                img.width(),
                img.height(),
                image::imageops::FilterType::Triangle,
            );
            out.save(approach.join(format!("{k:02}.jpg")))
                .expect("save");
        }
    }
    let mut bundled: Vec<PathBuf> = std::fs::read_dir(&frames)
        .expect("frames/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    bundled.sort();
    for (i, src) in bundled.iter().enumerate() {
        for k in 0..6 {
            std::fs::copy(src, visits.join(format!("{i:02}-{k}.jpg"))).expect("copy");
        }
    }

    println!(
        "{:<24} {:>7} {:>6} {:>7} {:>8} {:>10} {:>9} {:>7} {:>10} {:>10} {:>10}",
        "scenario",
        "workers",
        "mirror",
        "tracker",
        "camera",
        "decided",
        "embedded",
        "grants",
        "relay p50",
        "relay p99",
        "relay max"
    );
    // The default vision settings embed each face and its mirror image; board profiles for
    // the Pi turn the mirror off (half the embedder cost).
    let face = face_only.as_path();
    let sinks_only = std::env::var("FACEGATE_BENCH_SINKS").is_ok_and(|v| v == "only");
    // (label, frames, camera fps, workers, mirror, tracker)
    let plain: &[(&str, &Path, f32, usize, bool, bool)] = &[
        ("face in every frame", face, 30.0, 1, true, false),
        ("face in every frame", face, 30.0, 1, true, true),
        ("face in every frame", face, 30.0, 2, true, false),
        ("face in every frame", face, 30.0, 2, true, true),
        ("face in every frame", face, 60.0, 2, true, true),
        ("face in every frame", face, 30.0, 1, false, true),
        ("face in every frame", face, 30.0, 2, false, true),
        (
            "walking up (approach)",
            approach.as_path(),
            30.0,
            1,
            true,
            false,
        ),
        (
            "walking up (approach)",
            approach.as_path(),
            30.0,
            1,
            true,
            true,
        ),
        (
            "bundled visits (mixed)",
            visits.as_path(),
            30.0,
            1,
            true,
            true,
        ),
        (
            "bundled visits (mixed)",
            visits.as_path(),
            30.0,
            2,
            true,
            true,
        ),
    ];
    let broker = std::env::var("FACEGATE_MQTT_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if broker.is_none() {
        println!("(FACEGATE_MQTT_URL not set: the sinks off / on pair is not run)");
    }
    type Run<'a> = (&'a str, &'a Path, f32, usize, bool, bool, bool);
    let pair: Vec<Run> = match broker {
        Some(_) => vec![
            ("sinks off", face, 30.0, 1, true, true, false),
            ("sinks on (MQTT+webhook)", face, 30.0, 1, true, true, true),
        ],
        None => vec![],
    };
    // FACEGATE_BENCH_ONLY=WORD: only the scenarios whose label contains WORD, or "tracker":
    // only the tracker off / on pairs.
    let only = std::env::var("FACEGATE_BENCH_ONLY").unwrap_or_default();
    let runs: Vec<Run> = if sinks_only {
        pair
    } else {
        plain
            .iter()
            .map(|&(l, f, c, w, m, t)| (l, f, c, w, m, t, false))
            .chain(pair)
            .filter(|r| match only.as_str() {
                "" => true,
                "tracker" => r.3 == 1 && r.4 && r.0 != "bundled visits (mixed)",
                word => r.0.contains(word),
            })
            .collect()
    };
    for (label, folder, camera_fps, workers, mirror, track, sinks) in runs {
        let mut params = params.clone();
        params.flip = mirror;
        let sinks = sinks.then(|| events_out(&dir, &rt));
        let track = TrackConfig {
            enabled: track,
            ..TrackConfig::default()
        };
        let o = scenario(
            &models, &params, threshold, &cache, &rt, folder, camera_fps, workers, track, secs,
            sinks,
        );
        let mut lat = o.relay_ms.clone();
        lat.sort_by(f64::total_cmp);
        println!(
            "{:<24} {:>7} {:>6} {:>7} {:>6.1}/s {:>8.1}/s {:>8.0}% {:>7} {:>7.1} ms {:>7.1} ms {:>7.1} ms",
            label,
            workers,
            if mirror { "on" } else { "off" },
            if track.enabled { "on" } else { "off" },
            o.camera_fps,
            o.fps,
            o.embedded * 100.0,
            o.grants,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat.last().copied().unwrap_or(f64::NAN)
        );
        assert!(o.fps > 0.0, "{label}: no frame decided");
        assert!(o.grants > 0, "{label}: nobody was admitted");
    }
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Passes every record on (the bench reads the relay latency from them).
struct Forward(mpsc::Sender<Record>);

impl EventSink for Forward {
    fn record(&mut self, r: &Record) {
        let _ = self.0.send(r.clone());
    }
}

/// MQTT to `FACEGATE_MQTT_URL` (user and password from `FACEGATE_MQTT_USER` /
/// `FACEGATE_MQTT_PASSWORD`, as scripts/test exports them) and a webhook nobody answers.
fn events_out(dir: &Path, rt: &tokio::runtime::Runtime) -> EventsOut {
    let n = facegate::gallery::now_ms();
    let key = facegate::crypto::DeviceKey::generate().expect("key");
    let audit = Arc::new(
        facegate::access::AuditLog::open(&dir.join(format!("audit-{n}")), 1000, &key)
            .expect("audit log"),
    );
    let user = std::env::var("FACEGATE_MQTT_USER").unwrap_or_default();
    let mqtt = MqttConfig {
        enabled: true,
        url: std::env::var("FACEGATE_MQTT_URL").unwrap_or_default(),
        password: if user.is_empty() {
            Secret::default()
        } else {
            Secret::new("env:FACEGATE_MQTT_PASSWORD")
        },
        username: user,
        topic_prefix: format!("facegate-bench-{n}"),
        device_id: format!("bench_{n}"),
        discovery_prefix: format!("bench-ha-{n}"),
        ..MqttConfig::default()
    };
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let webhooks = WebhooksConfig {
        urls: vec![format!("http://{dead}/hook")],
        secret: Secret::new("bench-webhook-secret-0123456789"),
        retry_initial_ms: 100,
        retry_max_ms: 1000,
        ..WebhooksConfig::default()
    };
    EventsOut::start(
        &mqtt,
        &webhooks,
        &dir.join(format!("events-out-{n}")),
        &key,
        rt.handle(),
        DoorSide { door: None, audit },
    )
    .expect("events out")
}

#[allow(clippy::too_many_arguments)]
fn scenario(
    models: &Models,
    params: &facegate::vision::VisionParams,
    threshold: f32,
    cache: &Arc<Cache>,
    rt: &tokio::runtime::Runtime,
    folder: &Path,
    camera_fps: f32,
    workers: usize,
    track: TrackConfig,
    secs: f64,
    sinks: Option<EventsOut>,
) -> Outcome {
    let camera = RecordedSource::open(folder, camera_fps, true).expect("recorded frames");
    let (hw, _memory) = Hardware::memory(&HwConfig::default()).expect("in-memory hardware");
    let (tx, rx) = mpsc::channel();
    // With sinks: the daemon's records go through the records thread's fan-out, as in
    // `facegate run`, and reach the bench from there.
    let (tx, rx, records_thread) = match sinks {
        None => (tx, rx, None),
        Some(out) => {
            let (fwd_tx, fwd_rx) = mpsc::channel();
            let fan = FanOut::new().with(out).with(Forward(fwd_tx));
            let t = std::thread::spawn(move || fan.drain(&rx));
            (tx, fwd_rx, Some(t))
        }
    };
    let gallery: Arc<dyn Gallery> = cache.clone();
    let running = daemon::start(
        models,
        params.clone(),
        gallery,
        rt.handle().clone(),
        hw,
        camera,
        None,
        DaemonConfig {
            policy: PolicyConfig {
                same_face: threshold,
                frames: 3,
                cooldown_ms: 0,
                anti_passback_ms: 0,
            },
            operating: std::sync::Arc::new(facegate::access::decision::OperatingPoint::fixed(
                threshold, 0.0,
            )),
            door: DoorConfig {
                // Shorter than three frames, so every grant makes a fresh relay edge.
                unlock_ms: 30,
                held_open_ms: 30_000,
            },
            top_k: 3,
            display_hold_ms: 0,
            workers,
            save_face_crops: false,
            track,
        },
        tx,
    )
    .expect("daemon");
    // Warm up (first inferences allocate), then measure.
    std::thread::sleep(Duration::from_secs(1));
    let _: Vec<Record> = rx.try_iter().collect();
    let start_frames = running.frames_decided();
    let start_faces = running.faces_embedded();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let decided = running.frames_decided() - start_frames;
    let faces = running.faces_embedded();
    let (embeds, reuses) = (faces.0 - start_faces.0, faces.1 - start_faces.1);
    let elapsed = start.elapsed().as_secs_f64();
    running.stop();
    if let Some(t) = records_thread {
        t.join().expect("records thread").expect("sinks flushed");
    }
    let mut relay_ms = Vec::new();
    let mut grants = 0;
    for r in rx.try_iter() {
        if let Record::Door {
            event: DoorEvent::Unlocked {
                by: UnlockBy::Face { .. },
            },
            latency_ms,
            ..
        } = r
        {
            grants += 1;
            relay_ms.extend(latency_ms);
        }
    }
    Outcome {
        fps: decided as f64 / elapsed,
        embedded: embeds as f64 / (embeds + reuses).max(1) as f64,
        camera_fps: f64::from(camera_fps),
        grants,
        relay_ms,
    }
}
