//! A full disk: the door (`facegate run` with its API) keeps its gallery and audit log on a
//! small tmpfs, which the test fills. Writes get a clear 507 with the reason, reads keep
//! working, the door keeps deciding, nothing spins or piles up files, and writes work again
//! once space is freed. Needs root (to mount the tmpfs): skipped with a reason otherwise,
//! except under CI.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use facegate::api::auth::{generate_token, hash_token};
use facegate::app::space::{RESERVE_BYTES, free_bytes};
use serde_json::{Value, json};

/// A tmpfs of `mb` MB at `dir`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mb: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "facegate-test"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(dir.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn files_under(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            n += 1;
            if e.path().is_dir() {
                n += files_under(&e.path());
            }
        }
    }
    n
}

fn rss_mb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_the_door_keeps_deciding() {
    let dir = common::tmpdir("disk-full");
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let data = dir.join("data");
    let mounted = if root {
        Tmpfs::mount(&data, 64)
    } else {
        Err("not root".into())
    };
    let _tmpfs = match mounted {
        Ok(t) => t,
        Err(why) if !common::in_ci() => {
            eprintln!("SKIPPED: cannot mount a tmpfs for the full-disk test ({why}); run as root");
            return;
        }
        Err(why) => panic!("CI=true: the full-disk test must run, but mounting failed: {why}"),
    };

    let rt_setup = tokio::task::spawn_blocking({
        let data = data.clone();
        move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            drop(common::cache_with_obama(&data, &rt));
        }
    });
    rt_setup.await.unwrap();
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for (i, name) in std::iter::repeat_n("obama_2.jpg", 4)
        .chain(std::iter::repeat_n("no_face_coffee.jpg", 4))
        .enumerate()
    {
        std::fs::copy(common::fixture(name), frames.join(format!("{i:04}.jpg"))).unwrap();
    }
    let token = generate_token().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[gallery]\npath = {:?}\n{}\n[access]\ncooldown_s = 1\n\n[camera]\nrecorded_fps = 8.0\n\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\nadmin_token_sha256 = \"{}\"\n",
            data.join("gallery").display().to_string(),
            // The key the gallery was made with (common::cache_with_obama: beside it).
            common::key_line(&data),
            hash_token(&token)
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .arg("--config")
        .arg(&config)
        .args(["run", "--frames"])
        .arg(&frames)
        .arg("--no-hardware")
        .arg(dir.join("status.png"))
        .env("FACEGATE_MODELS", common::repo().join("models"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("run.err")).unwrap())
        .spawn()
        .expect("start facegate run");
    let mut child = common::KillOnDrop(child);
    let pid = child.id();
    let decisions = Arc::new(AtomicUsize::new(0));
    let stdout = child.stdout.take().unwrap();
    let counter = Arc::clone(&decisions);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("\"kind\":\"decision\"") {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    // A new connection for every request: a pooled connection the server has just closed (a
    // refused write closes it) fails the next request with IncompleteMessage, a client race.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let start = Instant::now();
    while http.get(url("/healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "run did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let create = |id: &str| {
        http.post(url("/v1/persons"))
            .bearer_auth(&token)
            .json(&json!({"id": id, "name": id}))
            .send()
    };
    assert_eq!(create("before").await.unwrap().status(), 201);

    // Fill the disk to below the reserve.
    let filler = data.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xA5u8; 1 << 20];
        while free_bytes(&data).unwrap() > RESERVE_BYTES / 2 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
    }
    let decided_when_full = decisions.load(Ordering::SeqCst);

    // Writes: 507 with the reason, every kind of them.
    let photo = std::fs::read(common::fixture("obama_1.jpg")).unwrap();
    let writes = vec![
        ("create", create("during").await.unwrap()),
        (
            "change",
            http.patch(url("/v1/persons/before"))
                .bearer_auth(&token)
                .json(&json!({"name": "Changed"}))
                .send()
                .await
                .unwrap(),
        ),
        (
            "enroll",
            http.post(url("/v1/persons/obama/faces"))
                .bearer_auth(&token)
                .header("content-type", "image/jpeg")
                .body(photo)
                .send()
                .await
                .unwrap(),
        ),
        (
            "delete",
            http.delete(url("/v1/persons/before"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        ),
    ];
    for (what, r) in writes {
        assert_eq!(r.status(), 507, "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "disk_full", "{what}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("full") && detail.contains("Free some space"),
            "{what}: {detail}"
        );
    }
    // Reads keep working.
    for path in [
        "/v1/persons",
        "/v1/persons/before",
        "/v1/events?limit=5",
        "/readyz",
    ] {
        let r = http
            .get(url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // The door keeps deciding on a full disk.
    let start = Instant::now();
    while decisions.load(Ordering::SeqCst) < decided_when_full + 2 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the door stopped deciding on a full disk"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing piles up or grows meanwhile.
    let files = files_under(&data);
    assert!(files < 200, "{files} files under the data directory");
    let rss = rss_mb(pid);
    assert!(rss < 1024, "RSS {rss} MB");

    // Space back: writes work again, and were never half-done.
    std::fs::remove_file(&filler).unwrap();
    let r = create("after").await.unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .get(url("/v1/persons/during"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the refused create left nothing");
    // (Another photo: the same one again would be "already enrolled", nothing written.)
    let r = http
        .post(url("/v1/persons/obama/faces"))
        .bearer_auth(&token)
        .header("content-type", "image/jpeg")
        .body(std::fs::read(common::fixture("obama_2.jpg")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // And it still stops cleanly.
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.join("run.err")).unwrap_or_default()
    );
    drop(_tmpfs);
    let _ = std::fs::remove_dir_all(&dir);
}
