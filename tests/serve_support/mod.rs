//! `facegate serve` as a user runs it: the real binary on a free loopback port, with a fresh
//! admin token; killed when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facegate::api::auth::{generate_token, hash_token};

use crate::common;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Served {
    pub child: Child,
    pub base: String,
    pub addr: String,
    pub token: String,
    pub dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `facegate serve` with the gallery at `gallery`, `extra` appended to its `[api]`
/// section, and `setup` applied to the command (environment, limits).
pub fn serve(
    dir: &Path,
    gallery: &Path,
    extra_api: &str,
    setup: impl FnOnce(&mut Command),
) -> Served {
    let token = generate_token().unwrap();
    let port = free_port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[gallery]\npath = {:?}\n{}\n[api]\nlisten = \"127.0.0.1:{port}\"\n\
             admin_token_sha256 = \"{}\"\n{extra_api}\n",
            gallery.display().to_string(),
            common::key_line(dir),
            hash_token(&token)
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facegate"));
    cmd.arg("--config")
        .arg(&config)
        .arg("serve")
        .env("FACEGATE_MODELS", common::repo().join("models"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    setup(&mut cmd);
    let child = cmd.spawn().expect("start facegate serve");
    Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
        addr: format!("127.0.0.1:{port}"),
        token,
        dir: dir.to_owned(),
    }
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Wait until `/healthz` answers (the models load first).
    pub async fn wait_healthy(&mut self) {
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(self.url("/healthz")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("facegate serve exited: {s}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "serve did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
