//! `facegate run` as an installer runs it for the console tests: the real binary on a free
//! loopback port, recorded camera frames (one photo, replayed in a loop), the in-memory door
//! hardware (`--no-hardware`), fresh admin and viewer tokens; killed when dropped.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// Wait until `port` accepts connections; panics if `child` exits first or after 120 s.
pub fn wait_for_port(port: u16, what: &str, child: &mut common::KillOnDrop) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub struct RunningDoor {
    pub base: String,
    pub admin: String,
    pub viewer: String,
    pub dir: PathBuf,
    pub child: common::KillOnDrop,
}

/// Start `facegate run` in `dir` with `photo` (a fixture) as the camera, replayed at `fps`,
/// and `extra` appended to the configuration (whole sections); wait until it listens.
pub fn start(dir: &Path, photo: &str, fps: f32, extra: &str) -> RunningDoor {
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    std::fs::copy(common::fixture(photo), frames.join("0000.jpg")).unwrap();
    let (admin, viewer) = (generate_token().unwrap(), generate_token().unwrap());
    let port = free_port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[gallery]\npath = {:?}\n{}\n[camera]\nrecorded_fps = {fps:.1}\n\n\
             [api]\nlisten = \"127.0.0.1:{port}\"\nadmin_token_sha256 = \"{}\"\n\
             viewer_token_sha256 = \"{}\"\n\n{extra}",
            dir.join("gallery").display().to_string(),
            common::key_line(dir),
            hash_token(&admin),
            hash_token(&viewer),
        ),
    )
    .unwrap();
    let mut child = common::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_facegate"))
            .arg("--config")
            .arg(&config)
            .args(["run", "--frames"])
            .arg(&frames)
            .arg("--no-hardware")
            .arg(dir.join("status.png"))
            .env("FACEGATE_MODELS", common::repo().join("models"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start facegate run"),
    );
    wait_for_port(port, "facegate run", &mut child);
    RunningDoor {
        base: format!("http://127.0.0.1:{port}"),
        admin,
        viewer,
        dir: dir.to_owned(),
        child,
    }
}

/// A console session: its cookie and its forms' CSRF token.
pub struct Signed {
    pub cookie: String,
    pub csrf: String,
}

/// Sign in to the console at `base` with `token` (the client must not follow redirects); the
/// sign-in's answer, and the session when one was opened.
pub async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> (reqwest::Response, Option<Signed>) {
    let r = http
        .post(format!("{base}/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let Some(set) = r
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
    else {
        return (r, None);
    };
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = http
        .get(format!("{base}/console/persons"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    (r, Some(Signed { cookie, csrf }))
}

/// The CSRF token in a console page's forms.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    let rest = &page[at + 19..];
    rest[..rest.find('"').unwrap()].to_owned()
}
