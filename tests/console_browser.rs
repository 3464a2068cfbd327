//! The web console in a real browser: headless Chromium (Debian's `chromium`) driven over
//! WebDriver (`chromium-driver`) by fantoccini, against the real `facegate run` binary with
//! the in-memory door hardware (`--no-hardware`: the relay is a pin in memory, not a GPIO
//! line) and recorded camera frames, on free loopback ports.
//!
//! Signs in as the admin, creates a person, enrolls them from a photo, sees the enrollment
//! event, unlocks the door (after the confirmation), reads the status, signs out and finds the
//! pages closed; then signs in as the viewer, who sees no change buttons. A screenshot of each
//! page goes to `$FACEGATE_CONSOLE_SHOTS` (else a temporary directory; the path is printed);
//! docs/console-*.png are one such set.
//!
//! `scripts/browser install` installs the browser (scripts/test calls it). Without it the
//! test prints SKIPPED, except when CI=true, where it fails.

mod common;
mod run_support;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The browser, or why the test cannot run.
fn browser_present() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    if common::in_ci() {
        panic!(
            "{CHROMIUM} or {CHROMEDRIVER} is missing, and CI=true: run `scripts/browser install` \
             (scripts/test does)"
        );
    }
    eprintln!(
        "SKIPPED: {CHROMIUM} or {CHROMEDRIVER} not found; `scripts/browser install` installs \
         Debian's chromium and chromium-driver"
    );
    false
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    async fn take(&self, c: &Client, name: &str) {
        let png = c.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(self.dir.join(format!("console-{name}.png")), png).unwrap();
    }
}

async fn text(c: &Client, css: &str) -> String {
    match c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e.text().await.unwrap(),
        Err(e) => panic!(
            "{css}: {e}; at {:?}:\n{}",
            c.current_url().await.map(|u| u.to_string()),
            c.source().await.unwrap_or_default()
        ),
    }
}

async fn click(c: &Client, css: &str) {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn fill(c: &Client, css: &str, value: &str) {
    let e = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    e.clear().await.ok();
    e.send_keys(value).await.unwrap();
}

async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

/// The page's path once it is `want`, or whatever it is after 10 s: a click that navigates
/// returns before the next page has loaded.
async fn path_when(c: &Client, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = path(c).await;
        if now == want || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn absent(c: &Client, css: &str) -> bool {
    c.find_all(Locator::Css(css)).await.unwrap().is_empty()
}

async fn sign_in(c: &Client, base: &str, token: &str) {
    c.goto(&format!("{base}/console/login")).await.unwrap();
    fill(c, "#token", token).await;
    click(c, "#signin").await;
    text(c, "#persons").await;
    assert_eq!(path_when(c, "/console/persons").await, "/console/persons");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    if !browser_present() {
        return;
    }
    let dir = common::tmpdir("console-browser");
    let shots = Shots {
        dir: std::env::var_os("FACEGATE_CONSOLE_SHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("shots")),
    };
    std::fs::create_dir_all(&shots.dir).unwrap();

    // The door: recorded frames without a face (the door stays quiet), in-memory hardware.
    let door = run_support::start(
        &dir,
        "no_face_coffee.jpg",
        2.0,
        "[hw]\nunlock_ms = 60000\n\n[console]\nsession_minutes = 30\n",
    );
    let (base, admin, viewer) = (door.base.clone(), door.admin.clone(), door.viewer.clone());

    let driver_port = run_support::free_port();
    let mut driver = common::KillOnDrop(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            // Its own process group, which the browsers it starts join: see KillGroupOnDrop.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let _browsers = KillGroupOnDrop(driver.id());
    run_support::wait_for_port(driver_port, "chromedriver", &mut driver);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1100,860", "--hide-scrollbars", "--lang=en-GB"],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session with headless Chromium");

    // Nothing without signing in.
    c.goto(&format!("{base}/console/persons")).await.unwrap();
    assert_eq!(path_when(&c, "/console/login").await, "/console/login");
    shots.take(&c, "login").await;
    fill(&c, "#token", "fgt_wrong").await;
    click(&c, "#signin").await;
    assert!(text(&c, "#error").await.contains("not valid"));

    // The admin: create a person with rules.
    sign_in(&c, &base, &admin).await;
    assert_eq!(text(&c, "#role").await, "admin");
    click(&c, "#new-person").await;
    fill(&c, "#id", "obama").await;
    fill(&c, "#name", "Barack Obama").await;
    fill(&c, "#external_id", "4711").await;
    fill(&c, "#schedule", "mon-fri 07:00-19:00\nsat 09:00-13:00").await;
    click(&c, "#create").await;
    assert!(text(&c, "#notice").await.contains("Person created"));
    assert_eq!(
        path_when(&c, "/console/persons/obama").await,
        "/console/persons/obama"
    );

    // Enroll from a photo (the browser uploads the file).
    let photo = common::fixture("obama_1.jpg");
    c.find(Locator::Css("#photos"))
        .await
        .unwrap()
        .send_keys(&photo.display().to_string())
        .await
        .unwrap();
    click(&c, "#enroll").await;
    let summary = text(&c, "#enroll-summary").await;
    assert!(summary.contains("1 photo enrolled, 0 refused"), "{summary}");
    assert!(text(&c, "#enroll-results").await.contains("obama_1.jpg"));
    shots.take(&c, "enrolled").await;
    c.goto(&format!("{base}/console/persons/obama"))
        .await
        .unwrap();
    assert!(text(&c, "main").await.contains("1 face template"));
    shots.take(&c, "person").await;

    // Enrollment at the door camera: the live preview and its advice. The recorded camera shows
    // no face here, so capture is not tried (tests/console_camera.rs captures a face).
    click(&c, "#enroll-camera").await;
    let camera = "/console/persons/obama/camera";
    assert_eq!(path_when(&c, camera).await, camera);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let advice = text(&c, "#camera-advice").await;
        if advice.contains("no face") {
            break;
        }
        assert!(Instant::now() < deadline, "the preview's advice: {advice}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shots.take(&c, "camera").await;
    // Capture with nobody at the camera: nothing is enrolled, and the page says why.
    click(&c, "#capture").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let said = text(&c, "main").await;
        if said.contains("Nothing was enrolled") {
            assert!(said.contains("no face"), "{said}");
            break;
        }
        assert!(Instant::now() < deadline, "after capture: {said}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.goto(&format!("{base}/console/persons/obama"))
        .await
        .unwrap();
    text(&c, "#person-name").await;

    // A photo without a face: refused, with the reason.
    c.find(Locator::Css("#photos"))
        .await
        .unwrap()
        .send_keys(&common::fixture("no_face_coffee.jpg").display().to_string())
        .await
        .unwrap();
    click(&c, "#enroll").await;
    let results = text(&c, "#enroll-results").await;
    assert!(
        results.contains("rejected") && results.contains("no_face"),
        "{results}"
    );

    // The list, searched.
    c.goto(&format!("{base}/console/persons?q=obam"))
        .await
        .unwrap();
    assert!(text(&c, "#persons").await.contains("Barack Obama"));
    c.goto(&format!("{base}/console/persons")).await.unwrap();
    shots.take(&c, "persons").await;

    // The enrollment event.
    c.goto(&format!("{base}/console/events?person=obama"))
        .await
        .unwrap();
    let events = text(&c, "#events").await;
    assert!(
        events.contains("enroll") && events.contains("enrolled"),
        "{events}"
    );
    shots.take(&c, "events").await;

    // The door: locked; unlock after the confirmation; audited.
    click(&c, "a[href='/console/door']").await;
    assert_eq!(text(&c, "#door-state").await, "locked");
    click(&c, "#unlock").await;
    assert_eq!(
        path_when(&c, "/console/door/unlock").await,
        "/console/door/unlock"
    );
    fill(&c, "#reason", "browser test").await;
    shots.take(&c, "unlock").await;
    click(&c, "#confirm").await;
    assert!(text(&c, "#notice").await.contains("Door unlocked"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = text(&c, "#door-state").await;
        if state == "unlocked" {
            break;
        }
        assert!(Instant::now() < deadline, "the door says {state}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.refresh().await.unwrap();
    }
    assert!(text(&c, "main").await.contains("web console: browser test"));
    shots.take(&c, "door").await;

    // The status page.
    click(&c, "a[href='/console/status']").await;
    assert!(
        text(&c, "#gallery")
            .await
            .contains("1 persons, 1 templates")
    );
    shots.take(&c, "status").await;

    // On a phone-sized screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/console/persons/obama"))
        .await
        .unwrap();
    text(&c, "#person-name").await;
    shots.take(&c, "phone").await;
    c.set_window_size(1100, 860).await.unwrap();

    // Sign out: the pages are closed again.
    click(&c, "#signout").await;
    assert_eq!(path_when(&c, "/console/login").await, "/console/login");
    for page in ["/console/persons", "/console/door", "/console/events"] {
        c.goto(&format!("{base}{page}")).await.unwrap();
        assert_eq!(
            path_when(&c, "/console/login").await,
            "/console/login",
            "{page} after signing out"
        );
    }

    // The viewer sees, and is shown nothing that changes.
    sign_in(&c, &base, &viewer).await;
    assert_eq!(text(&c, "#role").await, "viewer (read only)");
    assert!(absent(&c, "#new-person").await);
    c.goto(&format!("{base}/console/persons/obama"))
        .await
        .unwrap();
    text(&c, "#person-name").await;
    for change in ["#delete", "#save", "#enroll", "#photos"] {
        assert!(absent(&c, change).await, "the viewer sees {change}");
    }
    c.goto(&format!("{base}/console/door")).await.unwrap();
    text(&c, "#door-state").await;
    assert!(absent(&c, "#unlock").await);
    click(&c, "#signout").await;
    assert_eq!(path_when(&c, "/console/login").await, "/console/login");

    c.close().await.unwrap();
    drop(driver);
    drop(door);
    eprintln!("console screenshots in {}", shots.dir.display());
}

/// Kills a whole process group when dropped (also when the test panics): chromedriver and the
/// chromium processes it started. Killing chromedriver alone leaves its browsers running.
struct KillGroupOnDrop(u32);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
