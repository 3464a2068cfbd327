//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facegate::vision::{Embedding, Models, Pipeline, VisionParams, frame};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/faces").join(name)
}

/// The shipped models, loaded once per test binary.
pub fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        Models::load(
            &repo().join("models"),
            "blazeface-front-128",
            Some("mobilefacenet"),
        )
        .expect("shipped models load")
    })
}

pub fn pipeline() -> Pipeline {
    Pipeline::new(models(), VisionParams::default()).expect("pipeline")
}

/// `../shared/faces` beside the repository. On a clone without it the calling test is
/// skipped with a printed reason, except under CI, where its absence is a failure.
pub fn shared_faces() -> Option<PathBuf> {
    let dir = repo().join("../shared/faces");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing, and CI=true: the shared face photos are required in CI",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: {} not found (a clone without ../shared)",
        dir.display()
    );
    None
}

/// Embedding of the largest usable face in an image file.
pub fn embed_largest(p: &mut Pipeline, path: &Path) -> Embedding {
    let img = frame::read_image(path, frame::DEFAULT_MAX_PIXELS)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let faces = p
        .analyse(&img)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let face = faces
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{}: no face", path.display()));
    face.embedding
        .unwrap_or_else(|r| panic!("{}: {r}", path.display()))
}

/// Files in a directory with one of the given extensions, sorted.
pub fn images_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                matches!(
                    x.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "pgm"
                )
            })
        })
        .collect();
    v.sort();
    v
}

/// True when running under CI, where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The real Milvus server the tests use (`FACEGATE_MILVUS_URL`, set by `scripts/test`, which
/// starts one with `scripts/milvus`). Without it the calling test is skipped with a printed
/// reason, except under CI.
pub fn milvus_url() -> Option<String> {
    match std::env::var("FACEGATE_MILVUS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if in_ci() => panic!(
            "FACEGATE_MILVUS_URL is not set, and CI=true: the Milvus tests must run in CI \
             (scripts/test starts the server)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: FACEGATE_MILVUS_URL not set (run through scripts/test, or start one \
                 with `scripts/milvus start` and export FACEGATE_MILVUS_URL=http://127.0.0.1:19530)"
            );
            None
        }
    }
}

/// A fresh, unique temporary directory.
pub fn tmpdir(name: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "facegate-test-{name}-{}-{n}-{t}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The device key of a test folder: `dir/device.key` (beside, not inside, its gallery and
/// audit log), made on first use. In-process opens and spawned facegates share it.
pub fn device_key(dir: &Path) -> facegate::crypto::DeviceKey {
    use facegate::crypto::{DeviceKey, KeySource};
    let path = key_file(dir);
    if path.exists() {
        DeviceKey::load(&KeySource::File(path)).expect("load test device key")
    } else {
        DeviceKey::create(&path).expect("create test device key")
    }
}

/// Where [`device_key`] keeps it (created if absent), for `gallery.key_file` in a config.
pub fn key_file(dir: &Path) -> PathBuf {
    dir.join("device.key")
}

/// The `key_file = "..."` line for a test config's [gallery] section (the key made).
pub fn key_line(dir: &Path) -> String {
    device_key(dir);
    format!("key_file = {:?}\n", key_file(dir).display().to_string())
}

/// A config file in `dir` whose only settings are the gallery at `gallery` and the device
/// key of `dir`; its path.
pub fn gallery_config(dir: &Path, name: &str, gallery: &Path) -> PathBuf {
    let config = dir.join(name);
    std::fs::write(
        &config,
        format!(
            "[gallery]\npath = {:?}\n{}",
            gallery.display().to_string(),
            key_line(dir)
        ),
    )
    .expect("write config");
    config
}

/// A sealed sled gallery in `dir/gallery` (mobilefacenet, 192-d, the test device key).
pub fn open_cache(dir: &Path) -> std::sync::Arc<facegate::gallery::Cache> {
    use facegate::gallery::{Cache, ModelTag};
    std::sync::Arc::new(
        Cache::open(
            &dir.join("gallery"),
            &ModelTag::new("mobilefacenet", 192),
            &device_key(dir),
        )
        .expect("open gallery"),
    )
}

/// Create the person `id` named `name` in `cache`, enrolled from the largest face of `photo`.
pub fn enroll_photo(
    rt: &tokio::runtime::Runtime,
    cache: &facegate::gallery::Cache,
    p: &mut Pipeline,
    id: &str,
    name: &str,
    photo: &Path,
) {
    use facegate::gallery::{Gallery, NewPerson};
    let e = embed_largest(p, photo);
    rt.block_on(async {
        cache
            .create_person(NewPerson {
                id: Some(id.into()),
                name: name.into(),
                ..NewPerson::default()
            })
            .await
            .expect("create person");
        cache
            .add_templates(id, vec![e.0])
            .await
            .expect("enroll person");
    });
}

/// A sled gallery in `dir/gallery` with Obama enrolled from the bundled obama_1.jpg.
pub fn cache_with_obama(
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> std::sync::Arc<facegate::gallery::Cache> {
    let cache = open_cache(dir);
    enroll_photo(
        rt,
        &cache,
        &mut pipeline(),
        "obama",
        "Barack Obama",
        &fixture("obama_1.jpg"),
    );
    cache
}

/// The door settings of the replay tests: a fixed `threshold`, 3 agreeing frames, the given
/// cooldown and relay pulse, 2 workers, no face crops, the default face tracker.
pub fn replay_config(
    threshold: f32,
    cooldown_ms: u64,
    unlock_ms: u64,
) -> facegate::access::daemon::DaemonConfig {
    use facegate::access::{decision::OperatingPoint, door::DoorConfig, policy::PolicyConfig};
    facegate::access::daemon::DaemonConfig {
        policy: PolicyConfig {
            same_face: threshold,
            frames: 3,
            cooldown_ms,
            anti_passback_ms: 0,
        },
        operating: std::sync::Arc::new(OperatingPoint::fixed(threshold, 0.0)),
        door: DoorConfig {
            unlock_ms,
            held_open_ms: 30_000,
        },
        top_k: 3,
        display_hold_ms: 300,
        workers: 2,
        save_face_crops: false,
        track: facegate::access::daemon::TrackConfig::default(),
    }
}

/// Write the door's `records` to a fresh audit log in `dir/audit`, as `facegate run` does,
/// and read back every stored event (at most 100).
pub fn audited(
    dir: &Path,
    records: &[facegate::access::daemon::Record],
) -> Vec<facegate::access::Event> {
    use facegate::access::{AuditLog, EventFilter};
    let audit = AuditLog::open(&dir.join("audit"), 100, &device_key(dir)).expect("open audit");
    for r in records {
        if let Some(new) = r.audit_event() {
            audit.append(new).expect("append");
        }
    }
    audit
        .query(&EventFilter::default(), None, 100)
        .expect("query")
        .events
}

/// A Milvus collection prefix no other test run uses.
pub fn unique_prefix(name: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("t_{name}_{}_{t}", std::process::id())
}

/// Run the door daemon (default vision settings) over `camera` until its frames end, let the
/// last decisions settle, stop it; every record it sent, in order.
pub fn replay_door<S: facegate::camera::FrameSource + 'static>(
    models: &facegate::vision::Models,
    gallery: std::sync::Arc<dyn facegate::gallery::Gallery>,
    rt: &tokio::runtime::Runtime,
    hw: facegate::hw::Hardware,
    camera: S,
    config: facegate::access::daemon::DaemonConfig,
) -> Vec<facegate::access::daemon::Record> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut running = facegate::access::daemon::start(
        models,
        facegate::vision::VisionParams::default(),
        gallery,
        rt.handle().clone(),
        hw,
        camera,
        None,
        config,
        tx,
    )
    .expect("start the door daemon");
    running.wait_camera_end();
    std::thread::sleep(std::time::Duration::from_millis(600));
    running.stop();
    rx.try_iter().collect()
}

/// The child, killed if the test ends early (a failed assertion).
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Kill a conversion at several points: for each delay, re-run this test binary's
/// `child_test` (with `env_key` set to `dir`), wait for its "start" line, SIGKILL it `delay` ms
/// later, and stop once it printed "done" before the kill. After every kill that came first,
/// `between` checks what is on disk. `copy` is the in-flight folder, printed for each kill.
/// Returns whether one child finished.
pub fn kill_at_points(
    child_test: &str,
    env_key: &str,
    dir: &Path,
    copy: &Path,
    delays_ms: &[u64],
    mut between: impl FnMut(),
) -> bool {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("test binary");
    for &delay_ms in delays_ms {
        let mut child = Command::new(&exe)
            .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
            .env(env_key, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // The test harness prints its own lines first.
        assert!(
            lines
                .by_ref()
                .any(|l| l.is_ok_and(|l| l.ends_with("start"))),
            "the child did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let done = lines.any(|l| l.is_ok_and(|l| l.ends_with("done")));
        let in_flight = copy.exists();
        eprintln!("killed after {delay_ms} ms: finished {done}, copy in flight {in_flight}");
        if done {
            return true;
        }
        between();
    }
    false
}
