//! `facegate doctor` as a technician runs it (the real binary), on this machine: no GPIO chip,
//! no camera, so the door's hardware is the in-memory stand-in and the camera the recorded
//! frames, as `facegate run --no-hardware` uses them.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use facegate::gallery::{Cache, ModelTag, NewPerson};

/// The checks, in the order they are printed.
const CHECKS: [&str; 11] = [
    "config",
    "models",
    "camera",
    "gpio",
    "display",
    "gallery",
    "milvus",
    "recognition",
    "audit",
    "disk",
    "clock",
];

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The text line of one check, e.g. "PROBLEM  camera      ...".
    fn line(&self, check: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| {
                l.get(9..)
                    .is_some_and(|rest| rest.starts_with(&format!("{check:<12}")))
            })
            .unwrap_or_else(|| panic!("no {check} line in:\n{}\n{}", self.stdout, self.stderr))
    }

    fn status(&self, check: &str) -> &str {
        self.line(check)
            .split_whitespace()
            .next()
            .unwrap_or_default()
    }
}

fn doctor(config: &Path, extra: &[&str]) -> Run {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .arg("--config")
        .arg(config)
        .arg("doctor")
        .args(extra)
        .env("FACEGATE_MODELS", common::repo().join("models"))
        .output()
        .expect("run facegate doctor");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// An installation without door hardware: recorded frames, in-memory pins, PNG display, a
/// gallery with one person enrolled (a synthetic template: only counted here).
struct Install {
    dir: PathBuf,
    gallery: PathBuf,
}

impl Install {
    fn new(name: &str) -> Install {
        let dir = common::tmpdir(name);
        let gallery = dir.join("data/gallery");
        let cache = Cache::open(
            &gallery,
            &ModelTag::new("mobilefacenet", 192),
            &common::device_key(&dir),
        )
        .unwrap();
        cache
            .create_person_local(
                NewPerson {
                    id: Some("ada".into()),
                    name: "Ada".into(),
                    ..NewPerson::default()
                },
                false,
            )
            .unwrap();
        let e: Vec<f32> = (0..192).map(|i| (i as f32 * 0.37).sin()).collect();
        cache.add_templates_local("ada", vec![e], false).unwrap();
        drop(cache);
        Install { dir, gallery }
    }

    /// A config file: the working installation's settings, then `extra` tables/keys
    /// appended to the sections named in it.
    fn config(&self, camera: &str, hw: &str, milvus: &str, vision: &str) -> PathBuf {
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let text = format!(
            "[vision]\nembedder = \"mobilefacenet\"\n{vision}\n\
             [gallery]\npath = {}\n{}\n\
             [milvus]\n{milvus}\n\
             [camera]\nsource = \"recorded\"\n{camera}\n\
             [hw]\n{hw}\n",
            q(&self.gallery),
            common::key_line(&self.dir),
        );
        let path = self.dir.join(format!("config-{}.toml", text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn png(&self) -> String {
        format!(
            "gpio_backend = \"memory\"\ndisplay = \"png\"\npng_path = {:?}\n",
            self.dir.join("status.png").display().to_string()
        )
    }

    fn frames(&self) -> String {
        format!(
            "recorded_dir = {:?}\n",
            common::repo().join("frames").display().to_string()
        )
    }
}

#[test]
fn a_working_installation_without_hardware_is_ok_and_json_has_one_object_per_check() {
    let inst = Install::new("doctor-ok");
    let config = inst.config(&inst.frames(), &inst.png(), "", "");
    let r = doctor(&config, &[]);
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.lines().count(), CHECKS.len(), "{}", r.stdout);
    for check in [
        "config",
        "models",
        "camera",
        "gallery",
        "display",
        "recognition",
        "audit",
    ] {
        assert_eq!(r.status(check), "OK", "{}", r.line(check));
    }
    // The operating point: target FPIR, gallery size, threshold in force.
    let rec = r.line("recognition");
    assert!(
        rec.contains("target FPIR 1e-3") && rec.contains("1 template") && rec.contains("threshold"),
        "{rec}"
    );
    assert!(r.line("config").contains(&config.display().to_string()));
    let models = r.line("models");
    assert!(
        models.contains("blazeface-front-128")
            && models.contains("mobilefacenet")
            && models.contains("1 face")
            && models.contains("192-d")
            && models.contains("same model as the gallery"),
        "{models}"
    );
    let camera = r.line("camera");
    assert!(
        camera.contains("19 images") && camera.contains("first frame"),
        "{camera}"
    );
    let gallery = r.line("gallery");
    assert!(gallery.contains("1 person, 1 face template"), "{gallery}");
    assert_eq!(r.status("milvus"), "SKIPPED");
    assert!(r.line("milvus").contains("[milvus] url is empty"));
    // The in-memory stand-in pins are not a door: a warning, which says so.
    assert_eq!(r.status("gpio"), "WARNING");
    assert!(
        r.line("gpio").contains("no door is driven"),
        "{}",
        r.line("gpio")
    );
    assert!(
        !inst.dir.join("status.png").exists(),
        "the display was not drawn on"
    );

    let j = doctor(&config, &["--json"]);
    assert_eq!(j.code, Some(0), "{}\n{}", j.stdout, j.stderr);
    let objects: Vec<serde_json::Value> = j
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let names: Vec<&str> = objects
        .iter()
        .map(|o| o["check"].as_str().unwrap())
        .collect();
    assert_eq!(names, CHECKS);
    for o in &objects {
        let status = o["status"].as_str().unwrap();
        assert!(
            ["ok", "warning", "problem", "skipped"].contains(&status),
            "{o}"
        );
        assert!(!o["message"].as_str().unwrap().is_empty(), "{o}");
        // The same verdicts as the text run.
        let text = r.status(o["check"].as_str().unwrap()).to_lowercase();
        assert_eq!(status, text, "{o}");
    }
    assert_eq!(objects[6]["status"], "skipped");
    assert!(objects[3]["fix"].as_str().unwrap().contains("cdev"));
}

#[test]
fn a_missing_model_file_is_a_problem_that_names_it_and_says_what_to_do() {
    let inst = Install::new("doctor-model");
    let models = inst.dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    for f in [
        "blazeface-front-128.toml",
        "blazeface-front-128.onnx",
        "mobilefacenet.toml",
    ] {
        std::fs::copy(common::repo().join("models").join(f), models.join(f)).unwrap();
    }
    let vision = format!("models_dir = {:?}\n", models.display().to_string());
    let config = inst.config(&inst.frames(), &inst.png(), "", &vision);
    let r = doctor(&config, &[]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let line = r.line("models");
    assert!(line.starts_with("PROBLEM"), "{line}");
    assert!(
        line.contains(&models.join("mobilefacenet.onnx").display().to_string())
            && line.contains("is missing")
            && line.contains("Reinstall the facegate package"),
        "{line}"
    );
    // The rest is still checked.
    assert_eq!(r.status("camera"), "OK", "{}", r.stdout);
    assert_eq!(r.stdout.lines().count(), CHECKS.len(), "{}", r.stdout);
}

#[test]
fn a_missing_frames_folder_a_wrong_gpio_chip_and_a_gallery_in_use_are_named() {
    let inst = Install::new("doctor-problems");
    let frames = inst.dir.join("no-such-frames");
    let camera = format!("recorded_dir = {:?}\n", frames.display().to_string());
    let hw = "gpio_backend = \"cdev\"\ngpio_chip = \"no-such-chip\"\n";
    let config = inst.config(&camera, hw, "", "");
    // The gallery held by another process, as by a running door.
    let held = Cache::open(
        &inst.gallery,
        &ModelTag::new("mobilefacenet", 192),
        &common::device_key(&inst.dir),
    )
    .unwrap();
    let r = doctor(&config, &[]);
    drop(held);
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);

    let camera = r.line("camera");
    assert!(camera.starts_with("PROBLEM"), "{camera}");
    assert!(
        camera.contains(&frames.display().to_string())
            && camera.contains("does not exist")
            && camera.contains("camera.recorded_dir"),
        "{camera}"
    );

    let gpio = r.line("gpio");
    assert!(gpio.starts_with("PROBLEM"), "{gpio}");
    assert!(
        gpio.contains("\"no-such-chip\"") && gpio.contains("hw.gpio_chip"),
        "{gpio}"
    );
    let chips = facegate::hw::pins::cdev::list_chips().unwrap();
    if chips.is_empty() {
        assert!(gpio.contains("no GPIO chip at all"), "{gpio}");
    } else {
        assert!(
            gpio.contains(&format!("Chips found: {}", chips.join(", "))),
            "{gpio}"
        );
    }

    let gallery = r.line("gallery");
    assert!(gallery.starts_with("WARNING"), "{gallery}");
    assert!(
        gallery.contains("most likely a running facegate")
            && gallery.contains(&format!("pid {}", std::process::id())),
        "{gallery}"
    );
}

#[test]
fn milvus_down_is_a_warning_and_the_door_still_passes() {
    let inst = Install::new("doctor-milvus");
    // A loopback port with nobody listening.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let milvus = format!("url = \"http://127.0.0.1:{port}\"\n");
    let config = inst.config(&inst.frames(), &inst.png(), &milvus, "");
    let r = doctor(&config, &[]);
    eprintln!("{}", r.stdout);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let line = r.line("milvus");
    assert!(line.starts_with("WARNING"), "{line}");
    assert!(
        line.contains(&port.to_string()) && line.contains("keeps deciding from its own gallery"),
        "{line}"
    );
    // The Milvus check itself gives up within its 3 s budget, plus 1 s for the calls after
    // connecting (the whole run also loads the models and reads a frame).
    let ms: u64 = line
        .split("gave up after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line}"));
    assert!(ms <= 4500, "{line}");
    assert!(r.took < Duration::from_secs(60), "{:?}", r.took);
}

#[test]
fn a_config_that_does_not_load_is_the_one_problem_reported() {
    let dir = common::tmpdir("doctor-badconfig");
    let config = dir.join("config.toml");
    std::fs::write(&config, "[camera]\nsorce = \"v4l2\"\n").unwrap();
    let r = doctor(&config, &[]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let line = r.line("config");
    assert!(
        line.starts_with("PROBLEM") && line.contains("sorce") && line.contains("source"),
        "{line}"
    );
}

#[test]
fn the_infrared_camera_is_checked_only_when_liveness_ir_is_on() {
    let inst = Install::new("doctor-ir");
    let frames = common::repo().join("frames").display().to_string();
    // A folder of recorded infrared frames: OK, named (the bundled frames stand in here; the
    // doctor only reads them).
    let hw = format!(
        "{}\n[liveness]\nir = \"enforce\"\n[camera.ir]\nsource = \"recorded\"\nrecorded_dir = {frames:?}\n",
        inst.png()
    );
    let r = doctor(&inst.config(&inst.frames(), &hw, "", ""), &[]);
    assert_eq!(r.stdout.lines().count(), CHECKS.len() + 1, "{}", r.stdout);
    let ir = r.line("ir camera");
    assert_eq!(r.status("ir camera"), "OK", "{ir}");
    assert!(
        ir.contains("liveness.ir = \"enforce\"")
            && ir.contains("infrared recorded frames")
            && ir.contains("19 images"),
        "{ir}"
    );
    // An infrared camera that is not plugged in: a problem that says what the door does.
    let hw = format!(
        "{}\n[liveness]\nir = \"enforce\"\n[camera.ir]\ndevice = \"/dev/facegate-no-ir-camera\"\n",
        inst.png()
    );
    let r = doctor(&inst.config(&inst.frames(), &hw, "", ""), &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    let ir = r.line("ir camera");
    assert_eq!(r.status("ir camera"), "PROBLEM", "{ir}");
    assert!(
        ir.contains("/dev/facegate-no-ir-camera does not exist")
            && ir.contains("refuses every face as not live")
            && ir.contains("camera.ir.device"),
        "{ir}"
    );
    // On without a device named: the configuration is refused, naming the key.
    let hw = format!("{}\n[liveness]\nir = \"enforce\"\n", inst.png());
    let r = doctor(&inst.config(&inst.frames(), &hw, "", ""), &[]);
    assert_eq!(r.code, Some(1), "{}", r.stdout);
    assert!(
        r.line("config").contains("camera.ir.device"),
        "{}",
        r.stdout
    );
    let _ = std::fs::remove_dir_all(&inst.dir);
}
