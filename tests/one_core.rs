//! One application core (issue #12): the door, the HTTP API and the command line go through
//! the same use-cases. The door and the API give the same decision, naming the same person and
//! the same refusal reason, for the same photo against the same gallery; the duplicate-face
//! rule is the same from the command line and from the API.

mod api_support;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use api_support::{Options, Server, THRESHOLD, create_person, fixture_bytes, json};
use facegate::access::daemon::{DaemonConfig, Record};
use facegate::access::decision::OperatingPoint;
use facegate::access::door::DoorConfig;
use facegate::access::policy::{PolicyConfig, Verdict};
use facegate::camera::RecordedSource;
use facegate::gallery::{Cache, Gallery, ModelTag, NewPerson};
use facegate::hw::{Hardware, HwConfig};
use serde_json::Value;

/// Who was decided about and why not: (person, refusal code, refusal in words).
type Said = (Option<String>, Option<String>, Option<String>);

/// The door's decision on a visit of `probe` (six identical frames between empty scenes).
fn door_decides(
    dir: &Path,
    gallery: Arc<dyn Gallery>,
    rt: &tokio::runtime::Runtime,
    probe: &str,
) -> (Said, f32) {
    let frames = dir.join(format!("frames-{probe}"));
    std::fs::create_dir_all(&frames).unwrap();
    let plan = [
        ("no_face_coffee.jpg", 2),
        (probe, 6),
        ("no_face_coffee.jpg", 3),
    ];
    let mut n = 0;
    for (name, count) in plan {
        for _ in 0..count {
            std::fs::copy(common::fixture(name), frames.join(format!("{n:04}.jpg"))).unwrap();
            n += 1;
        }
    }
    let camera = RecordedSource::open(&frames, 4.0, false).unwrap();
    let (hw, _mem) = Hardware::memory(&HwConfig::default()).unwrap();
    let config = DaemonConfig {
        policy: PolicyConfig {
            same_face: THRESHOLD,
            frames: 3,
            cooldown_ms: 60_000,
            anti_passback_ms: 0,
        },
        // The API server's rule (api_support): the same fixed threshold, no margin.
        operating: Arc::new(OperatingPoint::fixed(THRESHOLD, 0.0)),
        door: DoorConfig {
            unlock_ms: 200,
            held_open_ms: 30_000,
        },
        top_k: 5,
        display_hold_ms: 300,
        workers: 1,
        save_face_crops: false,
        track: facegate::access::daemon::TrackConfig::default(),
    };
    let records = common::replay_door(common::models(), gallery, rt, hw, camera, config);
    let verdicts: Vec<&Verdict> = records
        .iter()
        .filter_map(|r| match r {
            Record::Decision { verdict, .. } => Some(verdict),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts.len(), 1, "one visit, one decision: {verdicts:#?}");
    match verdicts[0] {
        Verdict::Granted { person, score } => ((Some(person.clone()), None, None), *score),
        Verdict::Denied {
            person,
            score,
            reason,
        } => (
            (
                person.clone(),
                Some(reason.code().to_owned()),
                Some(reason.to_string()),
            ),
            *score,
        ),
        Verdict::Unknown { score, reason } => (
            (
                None,
                Some(reason.code().to_owned()),
                Some(reason.to_string()),
            ),
            *score,
        ),
        other => panic!("not a decision: {other:?}"),
    }
}

/// The API's decision on the same photo (`POST /v1/identify`).
async fn api_decides(s: &Server, probe: &str) -> (Said, f32) {
    let (status, body) = json(
        s.post("/v1/identify")
            .bearer_auth(&s.viewer)
            .header("content-type", "image/jpeg")
            .body(fixture_bytes(probe))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let face = &body["faces"][0];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let score = face["score"]
        .as_f64()
        .or(face["candidates"][0]["score"].as_f64())
        .unwrap_or(f64::NAN) as f32;
    (
        (
            text(&face["person"]),
            text(&face["refusal"]["reason"]),
            text(&face["reason"]),
        ),
        score,
    )
}

#[test]
fn the_door_and_the_api_give_the_same_decision_for_the_same_photo() {
    let dir = common::tmpdir("one-core-decision");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Obama enrolled; Biden enrolled but disabled.
    let cache = common::cache_with_obama(&dir, &rt);
    let biden = common::embed_largest(&mut common::pipeline(), &common::fixture("biden_1.jpg"));
    rt.block_on(async {
        cache
            .create_person(NewPerson {
                id: Some("biden".into()),
                name: "Joe Biden".into(),
                enabled: Some(false),
                ..NewPerson::default()
            })
            .await
            .unwrap();
        cache.add_templates("biden", vec![biden.0]).await.unwrap();
    });
    let gallery: Arc<dyn Gallery> = cache.clone();
    let server = rt.block_on(Server::start(
        "one-core-decision-api",
        Options {
            gallery: Some(Arc::clone(&gallery)),
            ..Options::default()
        },
    ));

    let mut seen = Vec::new();
    for (probe, expect) in [
        ("obama_2.jpg", (Some("obama"), None)),
        ("biden_2.jpg", (Some("biden"), Some("rules"))),
    ] {
        let (door, door_score) = door_decides(&dir, Arc::clone(&gallery), &rt, probe);
        let (api, api_score) = rt.block_on(api_decides(&server, probe));
        assert_eq!(door, api, "{probe}: the door and the API disagree");
        assert_eq!(
            (door.0.as_deref(), door.1.as_deref()),
            expect,
            "{probe}: {door:?}"
        );
        // Six identical frames fuse to the photo's own embedding: the same score.
        assert!(
            (door_score - api_score).abs() < 1e-3,
            "{probe}: door {door_score}, API {api_score}"
        );
        seen.push(door);
    }
    assert_eq!(seen[1].2.as_deref(), Some("person is disabled"));

    // Obama removed: his second photo is nobody now, for both, with the same reason.
    rt.block_on(cache.delete_person("obama")).unwrap();
    let (door, door_score) = door_decides(&dir, Arc::clone(&gallery), &rt, "obama_2.jpg");
    let (api, api_score) = rt.block_on(api_decides(&server, "obama_2.jpg"));
    assert_eq!(door.0, None, "{door:?}");
    assert_eq!(door.1.as_deref(), Some("below_threshold"), "{door:?}");
    assert_eq!((&door.0, &door.1), (&api.0, &api.1));
    assert!(
        (door_score - api_score).abs() < 1e-3,
        "door {door_score}, API {api_score}"
    );

    drop(server);
    drop(gallery);
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
}

fn facegate(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("FACEGATE_MODELS", common::repo().join("models"))
        .output()
        .expect("run facegate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture_arg(name: &str) -> String {
    common::fixture(name).display().to_string()
}

/// The three decimals after `marker` in `text` (a score as the refusal prints it).
fn score_after(text: &str, marker: &str) -> f64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in {text}"))
        + marker.len();
    text[at..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no number after {marker:?} in {text}"))
}

#[test]
fn the_duplicate_face_rule_is_the_same_from_the_command_line_and_the_api() {
    let dir = common::tmpdir("one-core-duplicate");
    let gallery_dir: PathBuf = dir.join("gallery");
    let config = common::gallery_config(&dir, "config.toml", &gallery_dir);

    // The command line: Obama enrolled; his other photo refused for somebody else; the same
    // photo again is already enrolled (nothing added, not a failure).
    let (ok, out, err) = facegate(
        &config,
        &[
            "gallery",
            "add",
            "Barack Obama",
            "--id",
            "obama",
            &fixture_arg("obama_1.jpg"),
        ],
    );
    assert!(ok, "{out}\n{err}");
    let (ok, cli_dup, _) = facegate(
        &config,
        &[
            "gallery",
            "add",
            "Impostor",
            "--id",
            "impostor",
            &fixture_arg("obama_2.jpg"),
        ],
    );
    assert!(!ok, "{cli_dup}");
    assert!(
        cli_dup.contains("already matches person obama"),
        "{cli_dup}"
    );
    let cli_score = score_after(&cli_dup, "(score ");
    let (ok, cli_same, err) = facegate(
        &config,
        &[
            "gallery",
            "add",
            "Barack Obama",
            "--id",
            "obama",
            &fixture_arg("obama_1.jpg"),
        ],
    );
    assert!(ok, "{cli_same}\n{err}");
    assert!(
        cli_same.contains("already enrolled for obama"),
        "{cli_same}"
    );
    assert!(cli_same.contains("enrolled 0 templates"), "{cli_same}");
    let (ok, out, _) = facegate(&config, &["gallery", "stats", "--json"]);
    assert!(ok);
    let stats: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stats["templates"], 1, "{stats}");

    // The API on the same gallery (the command line has let go of it).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache: Arc<dyn Gallery> = Arc::new(
        Cache::open(
            &gallery_dir,
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .unwrap(),
    );
    let s = rt.block_on(Server::start(
        "one-core-duplicate-api",
        Options {
            gallery: Some(cache),
            ..Options::default()
        },
    ));
    rt.block_on(async {
        create_person(&s, "impostor", "Impostor").await;
        let (status, body) = json(
            s.post_image("/v1/persons/impostor/faces", fixture_bytes("obama_2.jpg"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"], "duplicate");
        assert_eq!(body["person"], "obama");
        let api_score = body["score"].as_f64().unwrap();
        assert!(
            (api_score - cli_score).abs() < 0.0006,
            "the same score: API {api_score}, command line {cli_score}"
        );

        // The same photo of Obama again: already enrolled, nothing stored, no error.
        let (status, body) = json(
            s.post_image("/v1/persons/obama/faces", fixture_bytes("obama_1.jpg"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["enrolled"], 0, "{body}");
        assert_eq!(body["already_enrolled"], 1, "{body}");
        assert_eq!(body["results"][0]["status"], "already_enrolled");
        // Allowed duplicates: the override works the same way too.
        let (status, body) = json(
            s.post_image(
                "/v1/persons/impostor/faces?allow_duplicate=true",
                fixture_bytes("obama_2.jpg"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    });
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
