//! The files under `board/`: every profile parses as a facegate configuration (unknown keys
//! are errors), the packaged default config is exactly `default_toml()`, and the systemd unit,
//! udev rules and `.deb` recipe refer to files that exist.
//!
//! After a change of the documented defaults, regenerate `board/config.toml` with
//! `FACEGATE_BLESS=1 cargo test --test board_profiles` and commit it.

use std::path::{Path, PathBuf};

use facegate::config::{Config, default_toml};
use facegate::hw::config::GpioBackend;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn board_tomls() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("board"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn profile(name: &str) -> Config {
    let path = root().join("board").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    Config::parse(&text, &path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_board_toml_parses() {
    let files = board_tomls();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "config.toml",
        "rpi4.toml",
        "rpi5.toml",
        "jetson-orin-nano.toml",
        "x86-usb.toml",
    ] {
        assert!(names.iter().any(|n| n == want), "board/{want} missing");
    }
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        Config::parse(&text, path).unwrap_or_else(|e| panic!("{e}"));
        // The same text with a key that does not exist must be refused: a profile cannot
        // carry a key that facegate would silently ignore.
        let bad = text.replacen("[hw]\n", "[hw]\nrelay_pin = 4\n", 1);
        assert_ne!(bad, text, "{} has no [hw] section", path.display());
        let e = Config::parse(&bad, path).unwrap_err().to_string();
        assert!(e.contains("relay_pin"), "{}: {e}", path.display());
    }
}

#[test]
fn profiles_name_their_boards_gpio_chip() {
    for (file, chip, relay) in [
        ("rpi4.toml", "pinctrl-bcm2711", 17),
        ("rpi5.toml", "pinctrl-rp1", 17),
        ("jetson-orin-nano.toml", "tegra234-gpio", 105),
    ] {
        let c = profile(file);
        assert_eq!(c.hw.gpio_backend, GpioBackend::Cdev, "{file}");
        assert_eq!(c.hw.gpio_chip, chip, "{file}");
        assert_eq!(c.hw.relay_line, relay, "{file}");
        assert!(
            c.hw.door_contact_line.is_some() && c.hw.exit_button_line.is_some(),
            "{file}"
        );
    }
    let x86 = profile("x86-usb.toml");
    assert_eq!(x86.hw.gpio_backend, GpioBackend::Memory);
}

#[test]
fn packaged_default_config_is_default_toml() {
    let path = root().join("board/config.toml");
    let want = default_toml();
    if std::env::var_os("FACEGATE_BLESS").is_some() || !path.exists() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "board/config.toml differs from default_toml(): regenerate it with \
         FACEGATE_BLESS=1 cargo test --test board_profiles"
    );
    assert_eq!(profile("config.toml"), Config::default());
}

fn text(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn systemd_unit_is_notify_with_watchdog_and_hardening() {
    let unit = text("board/facegate.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for want in [
        "Type=notify",
        "NotifyAccess=main",
        "StateDirectory=facegate",
        "ProtectSystem=strict",
        "User=facegate",
        "ExecStart=/usr/bin/facegate --config /etc/facegate/config.toml run",
    ] {
        assert!(lines.contains(&want), "facegate.service lacks {want}");
    }
    assert!(lines.iter().any(|l| l.starts_with("WatchdogSec=")));
    // Room for api.max_connections sockets and the rest (a client flood meets facegate's own
    // connection bound, not "too many open files").
    let nofile: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("LimitNOFILE")
        .parse()
        .expect("a number");
    let max_connections = facegate::api::ApiConfig::default().max_connections as u64;
    assert!(
        nofile >= 4 * max_connections,
        "LimitNOFILE={nofile} vs max_connections {max_connections}"
    );
    let groups = lines
        .iter()
        .find(|l| l.starts_with("SupplementaryGroups="))
        .expect("SupplementaryGroups");
    for g in ["video", "gpio", "i2c"] {
        assert!(groups.split(['=', ' ']).any(|w| w == g), "{groups}");
    }
}

#[test]
fn udev_rules_cover_camera_gpio_i2c() {
    let rules = text("board/99-facegate.rules");
    let rules: Vec<&str> = rules
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for (subsystem, group) in [
        ("video4linux", "video"),
        ("gpio", "gpio"),
        ("i2c-dev", "i2c"),
        ("graphics", "video"),
    ] {
        assert!(
            rules
                .iter()
                .any(|r| r.contains(&format!("SUBSYSTEM==\"{subsystem}\""))
                    && r.contains(&format!("GROUP=\"{group}\""))),
            "no rule for {subsystem} -> {group}"
        );
    }
}

#[test]
fn deb_recipe_assets_exist() {
    let manifest: toml::Table = text("Cargo.toml").parse().unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    let mut dests = Vec::new();
    for asset in assets {
        let a = asset.as_array().expect("[source, dest, mode]");
        let source = a[0].as_str().unwrap();
        dests.push(a[1].as_str().unwrap().to_owned());
        if source.starts_with("target/") {
            continue; // built by cargo-deb
        }
        if source.contains('*') {
            let dir = Path::new(source).parent().unwrap();
            assert!(root().join(dir).is_dir(), "{source}");
        } else {
            assert!(root().join(source).is_file(), "{source} missing");
        }
    }
    for want in [
        "usr/bin/",
        "etc/facegate/config.toml",
        "lib/udev/rules.d/99-facegate.rules",
        "usr/share/facegate/models/",
        "usr/share/facegate/frames/",
    ] {
        assert!(dests.iter().any(|d| d == want), "no asset to {want}");
    }
    let units = deb["systemd-units"]["unit-scripts"].as_str().unwrap();
    assert!(root().join(units).join("facegate.service").is_file());
    let scripts = deb["maintainer-scripts"].as_str().unwrap();
    let postinst = text(&format!("{scripts}/postinst"));
    assert!(postinst.contains("adduser") || postinst.contains("useradd"));
}
