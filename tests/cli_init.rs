//! `facegate init`, `facegate token` and `facegate serve`'s refusal to run without an admin token.

mod common;

use std::process::Command;

use sha2::{Digest, Sha256};

fn facegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facegate"))
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn init_writes_a_config_with_the_hash_of_the_token_it_prints_once() {
    let dir = common::tmpdir("cli-init");
    let path = dir.join("etc/config.toml");
    let out = facegate()
        .args(["init", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout
        .lines()
        .find(|l| l.starts_with("fgt_"))
        .expect("the token is printed");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(token), "the config keeps only the hash");
    assert!(text.contains(&format!("admin_token_sha256 = \"{}\"", sha256_hex(token))));
    let config = facegate::config::Config::load(&path).expect("the written config loads");
    assert_eq!(config.api.listen, "127.0.0.1:8080");
    // The device key beside the config, named in it, loads.
    let key_path = dir.join("etc/device.key");
    assert_eq!(config.gallery.key_file, key_path);
    let key = facegate::gallery::load_device_key(&config.gallery).expect("the key loads");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by the owner only: {mode:o}");
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
    }

    // Not overwritten without --force; replaced with it (a new token).
    let again = facegate()
        .args(["init", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = facegate()
        .args(["init", "--force", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert_ne!(std::fs::read_to_string(&path).unwrap(), text);
    // The key is kept: it seals data that exists.
    let kept = facegate::gallery::load_device_key(&config.gallery).unwrap();
    assert_eq!(kept.check_value(), key.check_value());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_prints_a_token_and_its_config_line() {
    let out = facegate().args(["token", "--viewer"]).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("token line");
    assert_eq!(token.len(), 68);
    assert!(stdout.contains(&format!("viewer_token_sha256 = \"{}\"", sha256_hex(token))));
}

#[test]
fn serve_refuses_to_start_without_an_admin_token() {
    let dir = common::tmpdir("cli-serve");
    let path = dir.join("config.toml");
    std::fs::write(&path, "[api]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let out = facegate()
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no admin token") && stderr.contains("facegate init"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
