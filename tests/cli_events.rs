//! `facegate events` as a user runs it (the real binary): filters, output, bad input, face
//! crops; and, while `facegate run` holds the audit log, reading it through the door's API.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facegate::access::audit::FaceQuality;
use facegate::access::when::{format_local, format_rfc3339, local_zone};
use facegate::access::{Action, AuditLog, EventSource, NewEvent, Outcome};
use facegate::api::auth::{generate_token, hash_token};
use facegate::gallery::{Cache, Gallery, ModelTag, NewPerson, now_ms};
use serde_json::Value;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn facegate_cmd(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facegate"));
    c.arg("--config")
        .arg(config)
        .args(args)
        .env("FACEGATE_MODELS", common::repo().join("models"))
        .env_remove("FACEGATE_TOKEN");
    c
}

/// Run to the end: success, stdout, stderr.
fn facegate(config: &Path, args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut c = facegate_cmd(config, args);
    if let Some(t) = token {
        c.env("FACEGATE_TOKEN", t);
    }
    let out = c.output().expect("run facegate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn persons_of(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|e| e["person"].as_str().unwrap_or("-").to_owned())
        .collect()
}

fn quality() -> FaceQuality {
    FaceQuality {
        detector_score: 0.91,
        eye_distance_px: 41.0,
        yaw_deg: -7.0,
        roll_deg: 2.0,
        sharpness: 312.0,
    }
}

#[test]
fn filters_limits_json_table_crops_and_bad_input() {
    let dir = common::tmpdir("cli-events");
    let config = common::gallery_config(&dir, "config.toml", &dir.join("gallery"));
    // A gallery that knows Alice's name (Bob was deleted since), and the audit log beside it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Cache::open(
        &dir.join("gallery"),
        &ModelTag::new("mobilefacenet", 192),
        &common::device_key(&dir),
    )
    .unwrap();
    rt.block_on(cache.create_person(NewPerson {
        id: Some("alice".into()),
        name: "Alice Example".into(),
        ..NewPerson::default()
    }))
    .unwrap();
    drop(cache);
    let now = now_ms();
    let crop = common::fixture("obama_1.jpg");
    let crop_bytes = std::fs::read(&crop).unwrap();
    let log = AuditLog::open(&dir.join("audit"), 1000, &common::device_key(&dir)).unwrap();
    let door = |o| NewEvent::new(Action::Access, o, EventSource::Door);
    let t_3d = now - 72 * HOUR;
    let t_26h = now - 26 * HOUR;
    let t_2h = now - 2 * HOUR;
    let t_30m = now - 30 * MIN;
    let t_5m = now - 5 * MIN;
    log.append_at(
        door(Outcome::Granted)
            .person("alice")
            .score(0.81)
            .quality(quality()),
        t_3d,
    )
    .unwrap();
    log.append_at(
        door(Outcome::Denied)
            .person("bob")
            .score(0.77)
            .reason("person is disabled"),
        t_26h,
    )
    .unwrap();
    log.append_at(door(Outcome::Unknown).score(0.12), t_2h)
        .unwrap();
    let with_crop = log
        .append_at(
            door(Outcome::Granted)
                .person("alice")
                .score(0.84)
                .quality(quality())
                .face_jpeg(crop_bytes.clone()),
            t_30m,
        )
        .unwrap();
    log.append_at(
        NewEvent::new(Action::Identify, Outcome::Granted, EventSource::Api)
            .person("carol")
            .score(0.66),
        t_5m,
    )
    .unwrap();
    drop(log);

    // Everything, as JSON lines, oldest first.
    let (ok, out, err) = facegate(&config, &["events", "--json"], None);
    assert!(ok, "{err}");
    let all = json_lines(&out);
    assert_eq!(persons_of(&all), ["alice", "bob", "-", "alice", "carol"]);
    let times: Vec<i64> = all.iter().map(|e| e["time_ms"].as_i64().unwrap()).collect();
    assert_eq!(times, [t_3d, t_26h, t_2h, t_30m, t_5m]);
    let first = &all[0];
    assert_eq!(first["action"], "access");
    assert_eq!(first["outcome"], "granted");
    assert_eq!(first["source"], "door");
    assert_eq!(first["name"], "Alice Example");
    assert!((first["score"].as_f64().unwrap() - 0.81).abs() < 1e-6);
    assert_eq!(first["quality"]["sharpness"], 312.0);
    assert_eq!(first["time"], format_rfc3339(t_3d, &local_zone()));
    assert!(first["id"].is_u64());
    assert!(first.get("face_crop").is_none());
    assert_eq!(all[1]["reason"], "person is disabled");
    assert!(all[1].get("name").is_none(), "bob is not in the gallery");
    assert_eq!(all[3]["face_crop"], true);
    assert_eq!(all[4]["action"], "identify");
    assert_eq!(all[4]["source"], "api");

    let q = |args: &[&str]| {
        let mut a = vec!["events", "--json"];
        a.extend_from_slice(args);
        let (ok, out, err) = facegate(&config, &a, None);
        assert!(ok, "{args:?}: {err}");
        persons_of(&json_lines(&out))
    };
    // Relative spans, and --until exclusive.
    assert_eq!(q(&["--since", "3h"]), ["-", "alice", "carol"]);
    assert_eq!(q(&["--since", "3h", "--until", "10m"]), ["-", "alice"]);
    // A local "YYYY-MM-DD HH:MM" a minute before Bob's visit, and RFC 3339 to the millisecond.
    let before_bob = format_local(t_26h - MIN, &local_zone())[..16].to_owned();
    assert_eq!(q(&["--since", &before_bob]), ["bob", "-", "alice", "carol"]);
    let at_unknown = format_rfc3339(t_2h, &local_zone());
    assert_eq!(q(&["--until", &at_unknown]), ["alice", "bob"]);
    assert_eq!(
        q(&["--since", &at_unknown, "--until", "20m"]),
        ["-", "alice"]
    );
    // Person, outcome, source.
    assert_eq!(q(&["--person", "alice"]), ["alice", "alice"]);
    assert_eq!(q(&["--outcome", "denied"]), ["bob"]);
    assert_eq!(
        q(&["--outcome", "granted", "--source", "door"]),
        ["alice", "alice"]
    );
    assert_eq!(q(&["--source", "api"]), ["carol"]);
    assert!(q(&["--person", "nobody"]).is_empty());
    // --limit keeps the most recent, still oldest first.
    assert_eq!(q(&["--limit", "2"]), ["alice", "carol"]);
    assert_eq!(q(&["--limit", "0"]).len(), 5);

    // The table: a header, names beside ids, reasons, and a footer saying what was shown.
    let (ok, out, err) = facegate(&config, &["events", "--limit", "4"], None);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("OUTCOME"),
        "{out}"
    );
    assert_eq!(lines.len(), 6, "{out}");
    assert!(
        lines[1].contains("bob") && lines[1].contains("person is disabled"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format_local(t_26h, &local_zone())),
        "{out}"
    );
    assert!(lines[3].contains("alice (Alice Example)"), "{out}");
    assert!(
        lines[3].contains("sharp 312") && lines[3].contains("[face crop]"),
        "{out}"
    );
    assert!(lines[4].contains("api identify"), "{out}");
    assert!(
        lines[5].starts_with("4 events, oldest first") && lines[5].contains("most recent of more"),
        "{out}"
    );

    // Face crops: one file per listed event that has one.
    let crops = dir.join("crops");
    let (ok, _, err) = facegate(
        &config,
        &[
            "events",
            "--person",
            "alice",
            "--crops",
            crops.to_str().unwrap(),
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(err.contains("1 face crop written"), "{err}");
    let files: Vec<PathBuf> = std::fs::read_dir(&crops)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, [crops.join(format!("{}.jpg", with_crop.id))]);
    assert_eq!(std::fs::read(&files[0]).unwrap(), crop_bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "a face crop is readable by its owner only");
    }

    // Bad input: a clear message with examples, and nothing else happens.
    for (args, expect) in [
        (
            &["events", "--since", "3 days"][..],
            "not a time I understand",
        ),
        (&["events", "--since", "2026-02-30"], "has no day 30"),
        (&["events", "--until", "yesterday at noon"], "yesterday"),
        (
            &["events", "--since", "1h", "--until", "2h"],
            "is not before --until",
        ),
        (
            &["events", "--outcome", "maybe"],
            "granted, denied, unknown",
        ),
        (&["events", "--source", "lobby"], "door, api or cli"),
        (
            &["events", "--follow", "--until", "1h"],
            "cannot be combined",
        ),
    ] {
        let (ok, out, err) = facegate(&config, args, None);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    let (_, _, err) = facegate(&config, &["events", "--since", "3 days"], None);
    assert!(
        err.contains("15m") && err.contains("2026-11-24"),
        "examples: {err}"
    );

    // No audit log at all: said plainly, and none is created.
    let empty = common::gallery_config(&dir, "empty.toml", &dir.join("nothing/gallery"));
    let (ok, _, err) = facegate(&empty, &["events"], None);
    assert!(!ok && err.contains("no audit log"), "{err}");
    assert!(!dir.join("nothing").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A running `facegate run`, interrupted (like Ctrl-C) when dropped.
struct Daemon(Child);

impl Daemon {
    fn interrupt(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGINT);
        }
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.interrupt();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn while_the_door_runs_the_events_come_through_its_api() {
    let dir = common::tmpdir("cli-events-door");
    // Obama enrolled from obama_1.jpg; the camera replays him (obama_2.jpg) between empty
    // scenes, in a loop.
    let rt = tokio::runtime::Runtime::new().unwrap();
    drop(common::cache_with_obama(&dir, &rt));
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    for (i, name) in ["no_face_coffee.jpg", "no_face_coffee.jpg"]
        .into_iter()
        .chain(std::iter::repeat_n("obama_2.jpg", 6))
        .chain(std::iter::repeat_n("no_face_coffee.jpg", 4))
        .enumerate()
    {
        std::fs::copy(common::fixture(name), frames.join(format!("{i:04}.jpg"))).unwrap();
    }
    let (admin, viewer) = (generate_token().unwrap(), generate_token().unwrap());
    let port = free_port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[gallery]\npath = {:?}\n{}\n[access]\nsave_face_crops = true\ncooldown_s = 2\n\n\
             [camera]\nrecorded_fps = 8.0\n\n[api]\nlisten = \"127.0.0.1:{port}\"\n\
             admin_token_sha256 = \"{}\"\nviewer_token_sha256 = \"{}\"\n",
            dir.join("gallery").display().to_string(),
            common::key_line(&dir),
            hash_token(&admin),
            hash_token(&viewer),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("run.out")).unwrap();
    let errlog = std::fs::File::create(dir.join("run.err")).unwrap();
    let mut daemon = Daemon(
        facegate_cmd(
            &config,
            &[
                "run",
                "--frames",
                frames.to_str().unwrap(),
                "--no-hardware",
                dir.join("status.png").to_str().unwrap(),
            ],
        )
        .stdout(log)
        .stderr(errlog)
        .spawn()
        .expect("start facegate run"),
    );

    // Through the API with the viewer token, until the door has granted Obama.
    let start = Instant::now();
    let granted = loop {
        let (ok, out, err) = facegate(
            &config,
            &["events", "--json", "--outcome", "granted"],
            Some(&viewer),
        );
        if ok && !out.is_empty() {
            assert!(err.contains("reading it through its HTTP API"), "{err}");
            break json_lines(&out);
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no grant through the API: {err}\nrun: {}",
            std::fs::read_to_string(dir.join("run.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(granted[0]["person"], "obama");
    assert_eq!(
        granted[0]["name"], "Barack Obama",
        "the name came from the API"
    );
    assert_eq!(granted[0]["face_crop"], true);

    // Without a token: what is going on and what to do.
    let (ok, _, err) = facegate(&config, &["events"], None);
    assert!(!ok);
    assert!(
        err.contains("in use by a running facegate")
            && err.contains("FACEGATE_TOKEN")
            && err.contains(&format!(
                "curl -H \"Authorization: Bearer $TOKEN\" 'http://127.0.0.1:{port}/v1/events"
            )),
        "{err}"
    );
    // A wrong token is named as the problem.
    let (ok, _, err) = facegate(&config, &["events"], Some("fgt_wrong"));
    assert!(!ok && err.contains("refused the token"), "{err}");
    // Crops need the admin token.
    let crops = dir.join("crops");
    let c = crops.to_str().unwrap();
    let (ok, _, err) = facegate(
        &config,
        &["events", "--outcome", "granted", "--crops", c],
        Some(&viewer),
    );
    assert!(!ok && err.contains("admin token"), "{err}");
    let (ok, _, err) = facegate(
        &config,
        &[
            "events",
            "--outcome",
            "granted",
            "--limit",
            "1",
            "--crops",
            c,
        ],
        Some(&admin),
    );
    assert!(ok, "{err}");
    let files: Vec<PathBuf> = std::fs::read_dir(&crops)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let img = image::open(&files[0]).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (112, 112),
        "the aligned face crop"
    );

    // --follow prints the next grant as it happens (the replay loops; cooldown 2 s).
    let mut follow = facegate_cmd(
        &config,
        &[
            "events",
            "--follow",
            "--json",
            "--outcome",
            "granted",
            "--since",
            "now",
        ],
    )
    .env("FACEGATE_TOKEN", &viewer)
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(120));
    let _ = follow.kill();
    let _ = follow.wait();
    let line = line.expect("a new grant while following");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["person"], "obama");
    assert!(v["time_ms"].as_i64().unwrap() > granted.last().unwrap()["time_ms"].as_i64().unwrap());

    // Stopped, the log is read directly again, with the same events.
    daemon.interrupt();
    let (ok, out, err) = facegate(&config, &["events", "--json", "--outcome", "granted"], None);
    assert!(ok, "{err}");
    assert!(!err.contains("HTTP API"), "{err}");
    let local = json_lines(&out);
    assert!(local.len() >= 2, "{out}");
    assert!(
        local
            .iter()
            .all(|e| e["face_crop"] == true && e["name"] == "Barack Obama")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `access.time_zone` names the zone of `--since` and of the listed times, over `TZ`; `""` is
/// the system's (`TZ` here); an unknown name stops the command with a clear error.
#[test]
fn the_configured_time_zone_is_used_and_an_unknown_one_refused() {
    let dir = common::tmpdir("cli-events-zone");
    let base = std::fs::read_to_string(common::gallery_config(
        &dir,
        "base.toml",
        &dir.join("gallery"),
    ))
    .unwrap();
    let config = |name: &str, zone: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{base}\n[access]\ntime_zone = {zone:?}\n")).unwrap();
        path
    };
    // 2026-06-15 12:00:00 UTC: 17:45 in Kathmandu (+05:45), 08:00 in New York (summer, -04:00).
    let t = 1_781_524_800_000;
    let log = AuditLog::open(&dir.join("audit"), 1000, &common::device_key(&dir)).unwrap();
    log.append_at(
        NewEvent::new(Action::Access, Outcome::Unknown, EventSource::Door).score(0.1),
        t,
    )
    .unwrap();
    drop(log);
    let run = |config: &Path, args: &[&str]| {
        let mut c = facegate_cmd(config, args);
        c.env("TZ", "America/New_York");
        let out = c.output().expect("run facegate");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let times = |config: &Path, since: &str| -> Vec<String> {
        let (ok, out, err) = run(config, &["events", "--json", "--since", since]);
        assert!(ok, "{since}: {err}");
        json_lines(&out)
            .iter()
            .map(|e| e["time"].as_str().unwrap().to_owned())
            .collect()
    };

    let kathmandu = config("kathmandu.toml", "Asia/Kathmandu");
    assert_eq!(
        times(&kathmandu, "2026-06-15 17:45"),
        ["2026-06-15T17:45:00.000+05:45"]
    );
    assert!(times(&kathmandu, "2026-06-15 17:46").is_empty());
    let (ok, out, err) = run(&kathmandu, &["events", "--since", "2026-06-15"]);
    assert!(ok, "{err}");
    assert!(out.contains("2026-06-15 17:45:00"), "{out}");
    assert!(out.contains("local time (UTC+05:45)"), "{out}");

    // "" is the system's zone: TZ.
    let system = config("system.toml", "");
    assert_eq!(
        times(&system, "2026-06-15 08:00"),
        ["2026-06-15T08:00:00.000-04:00"]
    );
    assert!(times(&system, "2026-06-15 08:01").is_empty());

    let typo = config("typo.toml", "Asia/Katmandoo");
    let (ok, out, err) = run(&typo, &["events"]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("access.time_zone = \"Asia/Katmandoo\"") && err.contains("IANA"),
        "{err}"
    );
}
