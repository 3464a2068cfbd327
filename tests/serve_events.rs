//! Events out from `facegate serve` (no door): the API's requests reach MQTT and the webhooks
//! through the same fan-out as the door's decisions. The real binary, the real broker
//! (scripts/mosquitto, as in tests/mqtt.rs) and a real HTTP receiver (axum, in the test).
//!
//! - Webhooks: an enrollment and an identification are POSTed, signed; SIGTERM stops serve with
//!   exit 0 after the queue drained.
//! - MQTT: the events arrive under the prefix with availability "online"; no Home Assistant
//!   entity is announced (there is no lock or door contact in serve mode), no lock state kept.

mod common;
mod events_support;
mod serve_support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

const HOOK_SECRET: &str = "serve-webhook-secret-0123456789";

/// (body, signature verified) in arrival order.
type Bodies = Arc<Mutex<Vec<(Value, bool)>>>;

async fn hook(State(bodies): State<Bodies>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let ok = events_support::verify_signature(HOOK_SECRET.as_bytes(), &headers, &body);
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    bodies.lock().unwrap().push((json, ok));
    StatusCode::NO_CONTENT
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// SIGTERM, then the exit status (within 20 s).
fn terminate(served: &mut serve_support::Served) -> std::process::ExitStatus {
    signal(&served.child, libc::SIGTERM);
    let start = Instant::now();
    loop {
        if let Some(s) = served.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Create `person`, enroll obama_1.jpg, identify obama_2.jpg; the answers' statuses.
async fn enroll_and_identify(served: &serve_support::Served, person: &str) {
    let http = reqwest::Client::new();
    let r = http
        .post(served.url("/v1/persons"))
        .bearer_auth(&served.token)
        .json(&json!({"id": person, "name": "Barack Obama"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .post(served.url(&format!("/v1/persons/{person}/faces")))
        .bearer_auth(&served.token)
        .header("content-type", "image/jpeg")
        .body(std::fs::read(common::fixture("obama_1.jpg")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let r = http
        .post(served.url("/v1/identify"))
        .bearer_auth(&served.token)
        .header("content-type", "image/jpeg")
        .body(std::fs::read(common::fixture("obama_2.jpg")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

fn has_action(events: &[Value], action: &str, person: &str) -> bool {
    events.iter().any(|e| {
        let text = e.to_string();
        text.contains(&format!("\"{action}\"")) && text.contains(person)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_its_requests_to_the_webhooks_signed() {
    let dir = common::tmpdir("serve-webhooks");
    let bodies: Bodies = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Arc::clone(&bodies));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    std::fs::write(dir.join("hook.secret"), HOOK_SECRET).unwrap();
    let extra = format!(
        "\n[webhooks]\nurls = [\"http://{addr}/hook\"]\nsecret = \"file:{}\"\nretry_initial_ms = 100\n",
        dir.join("hook.secret").display()
    );
    let mut served = serve_support::serve(&dir, &dir.join("gallery"), &extra, |_| {});
    served.wait_healthy().await;
    enroll_and_identify(&served, "obama").await;

    let start = Instant::now();
    let events = loop {
        let got = bodies.lock().unwrap().clone();
        let events: Vec<Value> = got.iter().map(|(b, _)| b.clone()).collect();
        if has_action(&events, "enroll", "obama") && has_action(&events, "identify", "obama") {
            assert!(got.iter().all(|(_, ok)| *ok), "a signature did not verify");
            break events;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the enrollment and the identification did not arrive: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // In order, each with the device and a sequence number.
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(
        seqs.len(),
        events.len(),
        "every event has a seq: {events:?}"
    );
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order: {seqs:?}"
    );
    // No biometric data in the events: no embedding, no image.
    for e in &events {
        assert!(
            e.get("embedding").is_none() && e.get("face").is_none(),
            "{e}"
        );
    }
    let status = terminate(&mut served);
    assert!(status.success(), "serve after SIGTERM: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publishes_its_requests_to_mqtt_and_announces_no_door() {
    let Some(b) = events_support::broker() else {
        return;
    };
    let dir = common::tmpdir("serve-mqtt");
    let prefix = events_support::unique("fgserve");
    let device = events_support::unique("serve");
    let discovery = events_support::unique("hadisc");
    let sub = events_support::Subscriber::connect(
        &b,
        &events_support::unique("servesub"),
        &[format!("{prefix}/#"), format!("{discovery}/#")],
        false,
    );
    let extra = format!(
        "\n[mqtt]\nenabled = true\nurl = {:?}\nusername = {:?}\npassword = {:?}\n\
         topic_prefix = {prefix:?}\ndevice_id = {device:?}\ndiscovery = true\n\
         discovery_prefix = {discovery:?}\nkeep_alive_s = 5\n",
        b.url, b.user, b.password
    );
    let mut served = serve_support::serve(&dir, &dir.join("gallery"), &extra, |c: &mut Command| {
        c.env("RUST_LOG", "warn");
    });
    served.wait_healthy().await;
    assert!(
        events_support::wait_until(Duration::from_secs(15), || sub
            .on(&format!("{prefix}/availability"))
            .iter()
            .any(|m| m.text() == "online")),
        "no availability \"online\""
    );
    enroll_and_identify(&served, "obama").await;
    let topic = format!("{prefix}/events");
    assert!(
        events_support::wait_until(Duration::from_secs(20), || {
            let v: Vec<Value> = sub.on(&topic).iter().map(|m| m.json()).collect();
            has_action(&v, "enroll", "obama") && has_action(&v, "identify", "obama")
        }),
        "the requests did not arrive on {topic}"
    );
    let status = terminate(&mut served);
    assert!(status.success(), "serve after SIGTERM: {status}");
    // Nothing announced to Home Assistant, and no lock state: serve has no door.
    let all = sub.messages();
    assert!(
        !all.iter().any(|m| m.topic.starts_with(&discovery)),
        "discovery configs published by serve: {:?}",
        all.iter().map(|m| &m.topic).collect::<Vec<_>>()
    );
    assert!(
        !all.iter()
            .any(|m| m.topic == format!("{prefix}/lock/state")),
        "a lock state published by serve"
    );
}
