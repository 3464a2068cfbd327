//! `facegate enroll` and `facegate gallery …` as a user runs them (the real binary).

mod common;

use std::path::Path;
use std::process::Command;

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

#[test]
fn enroll_a_folder_list_stats_remove() {
    let dir = common::tmpdir("cli-gallery");
    let photos = dir.join("photos");
    for (person, files) in [
        (
            "obama",
            &["obama_1.jpg", "obama_2.jpg", "two_people.jpg"][..],
        ),
        ("joe_biden", &["biden_1.jpg", "no_face_coffee.jpg"][..]),
    ] {
        std::fs::create_dir_all(photos.join(person)).unwrap();
        for f in files {
            std::fs::copy(common::fixture(f), photos.join(person).join(f)).unwrap();
        }
    }
    std::fs::write(photos.join("joe_biden/broken.jpg"), b"not a jpeg").unwrap();
    let config = common::gallery_config(&dir, "config.toml", &dir.join("gallery"));
    let p = photos.display().to_string();

    let (ok, out, err) = facegate(&config, &["enroll", &p, "--json"]);
    assert!(ok, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["persons"], 2, "{report}");
    assert_eq!(report["templates"], 3, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 3, "{report}");
    let reason = |file: &str| {
        rejected
            .iter()
            .find(|r| r["file"].as_str().unwrap().ends_with(file))
            .map(|r| r["reason"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{file} not rejected: {report}"))
    };
    assert!(reason("two_people.jpg").contains("2 faces"));
    assert!(reason("no_face_coffee.jpg").contains("no face"));
    assert!(reason("broken.jpg").contains("not a supported image"));

    // Running it again adds nothing: every photo is already enrolled.
    let (ok, out, _) = facegate(&config, &["enroll", &p, "--json"]);
    assert!(ok);
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["templates"], 0, "{again}");

    // A photo of Obama cannot be enrolled as somebody else.
    let (ok, out, _) = facegate(
        &config,
        &[
            "gallery",
            "add",
            "Impostor",
            "--id",
            "impostor",
            &common::fixture("obama_2.jpg").display().to_string(),
        ],
    );
    assert!(!ok);
    assert!(out.contains("already matches person obama"), "{out}");

    let (ok, out, _) = facegate(&config, &["gallery", "list", "--json"]);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["person"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["joe_biden", "obama"]);
    assert_eq!(list[0]["person"]["name"], "joe biden");

    let (ok, out, _) = facegate(&config, &["gallery", "remove", "obama"]);
    assert!(ok);
    assert!(out.contains("2 template(s)"), "{out}");
    let (ok, out, _) = facegate(&config, &["gallery", "stats", "--json"]);
    assert!(ok);
    let stats: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (stats["persons"].as_u64(), stats["templates"].as_u64()),
        (Some(1), Some(1))
    );
    let (ok, _, err) = facegate(&config, &["gallery", "remove", "obama"]);
    assert!(!ok);
    assert!(err.contains("no person with id \"obama\""), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The audit events the command line wrote (`facegate events --json --source cli`).
fn cli_events(config: &Path) -> Vec<serde_json::Value> {
    let (ok, out, err) = facegate(
        config,
        &["events", "--json", "--source", "cli", "--limit", "0"],
    );
    assert!(ok, "{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn enroll_and_remove_from_the_command_line_are_in_the_audit_log() {
    let dir = common::tmpdir("cli-gallery-audit");
    let config = common::gallery_config(&dir, "config.toml", &dir.join("gallery"));
    let fixture = |f: &str| common::fixture(f).display().to_string();

    let (ok, out, err) = facegate(
        &config,
        &[
            "gallery",
            "add",
            "Barack Obama",
            "--id",
            "obama",
            &fixture("obama_1.jpg"),
            &fixture("obama_2.jpg"),
        ],
    );
    assert!(ok, "{out}\n{err}");
    let photos = dir.join("photos/joe_biden");
    std::fs::create_dir_all(&photos).unwrap();
    for f in ["biden_1.jpg", "no_face_coffee.jpg"] {
        std::fs::copy(common::fixture(f), photos.join(f)).unwrap();
    }
    let (ok, out, err) = facegate(
        &config,
        &["enroll", &dir.join("photos").display().to_string()],
    );
    assert!(ok, "{out}\n{err}");

    let events = cli_events(&config);
    let enrolled: Vec<(&str, u64)> = events
        .iter()
        .filter(|e| e["action"] == "enroll" && e["outcome"] == "enrolled")
        .map(|e| {
            (
                e["person"].as_str().unwrap(),
                e["template"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        enrolled.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        ["obama", "obama", "joe_biden"],
        "{events:#?}"
    );
    let rejected: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["action"] == "enroll" && e["outcome"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), 1, "{events:#?}");
    assert_eq!(rejected[0]["person"], "joe_biden");
    assert!(
        rejected[0]["reason"].as_str().unwrap().contains("no face"),
        "{rejected:?}"
    );
    assert!(events.iter().all(|e| e["source"] == "cli"), "{events:#?}");

    // One template, then a person.
    let template = enrolled[0].1.to_string();
    let (ok, out, err) = facegate(&config, &["gallery", "remove", "--template", &template]);
    assert!(ok, "{out}\n{err}");
    let (ok, out, err) = facegate(&config, &["gallery", "remove", "obama"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("1 template(s)"), "{out}");
    let events = cli_events(&config);
    let deleted: Vec<(&str, Option<&str>, Option<u64>)> = events
        .iter()
        .filter(|e| e["outcome"] == "deleted")
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["person"].as_str(),
                e["template"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        deleted,
        [
            ("delete_face", None, Some(enrolled[0].1)),
            ("delete_person", Some("obama"), None)
        ],
        "{events:#?}"
    );
    // A removal refused (nobody by that id) writes nothing.
    let (ok, _, _) = facegate(&config, &["gallery", "remove", "obama"]);
    assert!(!ok);
    assert_eq!(cli_events(&config).len(), events.len());
    let _ = std::fs::remove_dir_all(&dir);
}
