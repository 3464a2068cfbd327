//! Enrollment at the door camera from the web console, against the real binary: `facegate run`
//! with recorded camera frames (a photo of a person, replayed: the honest stand-in for a person
//! standing at the door) and the in-memory door hardware (`--no-hardware`). The preview and its
//! advice follow the camera; "capture" enrolls the best of the next frames through the API's
//! enrollment route (template stored, audit event); the viewer sees none of it; a form without
//! the session's CSRF token enrolls nothing.

mod common;
mod run_support;

use run_support::Signed;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

struct Door {
    base: String,
    admin: String,
    viewer: String,
    http: reqwest::Client,
    _run: run_support::RunningDoor,
}

fn start(name: &str, photo: &str) -> Door {
    let run = run_support::start(
        &common::tmpdir(name),
        photo,
        5.0,
        "[liveness]\ndoor = \"off\"\n",
    );
    Door {
        base: run.base.clone(),
        admin: run.admin.clone(),
        viewer: run.viewer.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _run: run,
    }
}

impl Door {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    async fn sign_in(&self, token: &str) -> Signed {
        let (r, s) = run_support::sign_in(&self.http, &self.base, token).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        s.expect("a session")
    }

    async fn get(&self, s: &Signed, p: &str) -> reqwest::Response {
        self.http
            .get(self.url(p))
            .header("cookie", &s.cookie)
            .send()
            .await
            .unwrap()
    }

    async fn capture(&self, s: &Signed, person: &str, csrf: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/console/persons/{person}/capture")))
            .header("cookie", &s.cookie)
            .header("origin", &self.base)
            .form(&[("csrf", csrf)])
            .send()
            .await
            .unwrap()
    }

    async fn api(&self, p: &str) -> Value {
        self.http
            .get(self.url(p))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_is_enrolled_from_the_door_camera_by_the_admin_only() {
    let door = start("console-camera", "biden_1.jpg");
    let r = door
        .http
        .post(door.url("/v1/persons"))
        .bearer_auth(&door.admin)
        .json(&json!({"id": "biden", "name": "Joe Biden"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let admin = door.sign_in(&door.admin).await;

    // The person's page links to the camera page, which shows the preview.
    let page = door
        .get(&admin, "/console/persons/biden")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("/console/persons/biden/camera"), "{page}");
    let r = door.get(&admin, "/console/persons/biden/camera").await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"camera-frame\""), "{page}");
    assert!(
        page.contains("Enroll Joe Biden at the door camera"),
        "{page}"
    );
    assert!(
        page.contains("action=\"/console/persons/biden/capture\""),
        "{page}"
    );

    // The preview follows the camera: one usable face, its quality, a JPEG with the box.
    let deadline = Instant::now() + Duration::from_secs(30);
    let state = loop {
        let s: Value = door
            .get(&admin, "/console/camera/state")
            .await
            .json()
            .await
            .unwrap();
        if s["usable"] == true {
            break s;
        }
        assert!(Instant::now() < deadline, "never usable: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(state["faces"], 1, "{state}");
    // The door's frame rate (5 frames/s replayed) is reported, and shown on the status page.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = door.api("/v1/door").await;
        let fps = d["frames_per_s"].as_f64().expect("frames_per_s");
        assert!(fps < 20.0, "faster than the camera: {d}");
        if fps > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no frame rate: {d}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let status = door
        .get(&admin, "/console/status")
        .await
        .text()
        .await
        .unwrap();
    assert!(status.contains("frames&#x2f;s looked at"), "{status}");
    assert!(status.contains("id=\"disk\" class=\""), "{status}");
    assert!(
        status.contains("(UTC)") && !status.contains("not set"),
        "{status}"
    );
    let ready = door.api("/readyz").await;
    let free = ready["host"]["disk"]["free_bytes"].as_u64().unwrap();
    let want = match facegate::host::judge_free_space(free) {
        Ok(()) => "ok",
        Err(false) => "low",
        Err(true) => "full",
    };
    assert_eq!(ready["host"]["disk"]["state"], want, "{ready}");
    assert!(
        status.contains(&format!("id=\"disk\" class=\"{want}\"")),
        "{status}"
    );
    assert!(
        ready["host"]["disk"].get("path").is_none(),
        "no path without a token"
    );
    assert_eq!(ready["host"]["clock"]["set"], true);
    assert!(state["quality"]["eye_distance_px"].as_f64().unwrap() > 10.0);
    assert!(state["advice"].as_str().unwrap().starts_with("good"));
    let r = door.get(&admin, "/console/camera/frame.jpg").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let jpeg = r.bytes().await.unwrap();
    let img = image::load_from_memory(&jpeg).unwrap();
    assert!(img.width() <= 480 && img.width() > 0);

    // The viewer sees none of the camera, and cannot capture.
    let viewer = door.sign_in(&door.viewer).await;
    for p in [
        "/console/camera/frame.jpg",
        "/console/camera/state",
        "/console/persons/biden/camera",
    ] {
        assert_eq!(
            door.get(&viewer, p).await.status(),
            StatusCode::FORBIDDEN,
            "{p}"
        );
    }
    let r = door.capture(&viewer, "biden", &viewer.csrf).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A form without the session's CSRF token enrolls nothing.
    let r = door.capture(&admin, "biden", "not-the-token").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let person = door.api("/v1/persons/biden").await;
    assert_eq!(
        person["faces"].as_array().map(Vec::len),
        Some(0),
        "{person}"
    );

    // Capture: the best of the next frames is enrolled, with the API's audit event.
    let r = door.capture(&admin, "biden", &admin.csrf).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("door camera, frame"), "{page}");
    assert!(page.contains("Enrollment of Joe Biden"), "{page}");
    assert!(page.contains("1 photo enrolled"), "{page}");
    let person = door.api("/v1/persons/biden").await;
    assert_eq!(
        person["faces"].as_array().map(Vec::len),
        Some(1),
        "{person}"
    );
    let events = door.api("/v1/events?action=enroll&person=biden").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["outcome"], "enrolled", "{events:?}");

    // The door now recognises the person it sees.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let granted = door
            .api("/v1/events?source=door&outcome=granted&person=biden&limit=1")
            .await;
        if granted["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the door never admitted biden");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
