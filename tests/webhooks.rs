//! Webhooks against a real HTTP receiver in the test (axum): every event POSTed, signed
//! (HMAC-SHA256 over "t.body", verified here independently of facegate's code), and, after the
//! receiver was down for a while, every event delivered, in order.
//!
//! FACEGATE_WEBHOOK_OUTAGE_S sets the outage (default 3 s; the issue's scenario is 30).

mod common;
mod events_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use facegate::access::AuditLog;
use facegate::app::sink::EventSink;
use facegate::events_out::{DoorSide, EventsOut, MqttConfig, Secret, WebhooksConfig};
use serde_json::Value;

const SECRET: &str = "webhook-shared-secret-0123456789";

#[derive(Clone, Default)]
struct Received {
    /// (body, verified) in arrival order.
    bodies: Arc<Mutex<Vec<(Value, bool)>>>,
}

/// The receiver's own check ([`events_support::verify_signature`]) with this test's secret.
fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    events_support::verify_signature(SECRET.as_bytes(), headers, body)
}

async fn hook(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let ok = verify(&headers, &body);
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    r.bodies.lock().unwrap().push((json, ok));
    if ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// Serve the receiver on `addr` until the returned sender is dropped or fired.
fn serve(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    r: Received,
) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .expect("bind the receiver");
    rt.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    tx
}

#[test]
fn webhooks_are_signed_and_survive_a_receiver_outage_in_order() {
    let outage = Duration::from_secs_f64(
        std::env::var("FACEGATE_WEBHOOK_OUTAGE_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0),
    );
    let dir = common::tmpdir("webhooks");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let received = Received::default();
    let receiver = serve(&rt, addr, received.clone());
    let key = common::device_key(&dir);
    let audit = Arc::new(AuditLog::open(&dir.join("audit"), 1000, &key).unwrap());
    std::fs::write(dir.join("hook.secret"), SECRET).unwrap();
    let webhooks = WebhooksConfig {
        urls: vec![format!("http://{addr}/hook")],
        secret: Secret::new(format!("file:{}", dir.join("hook.secret").display())),
        timeout_ms: 2000,
        retry_initial_ms: 100,
        retry_max_ms: 800,
        ..WebhooksConfig::default()
    };
    let mut out = EventsOut::start(
        &MqttConfig::default(),
        &webhooks,
        &dir.join("events-out"),
        &key,
        rt.handle(),
        DoorSide { door: None, audit },
    )
    .unwrap();
    let records = events_support::records(20);
    for r in &records[..10] {
        out.record(r);
    }
    assert!(events_support::wait_until(Duration::from_secs(10), || out
        .queued()
        == 0));
    let before = received.bodies.lock().unwrap().len();
    assert_eq!(before, 10);

    // The receiver goes down; events keep coming; it comes back after `outage`.
    drop(receiver);
    std::thread::sleep(Duration::from_millis(200));
    for r in &records[10..] {
        out.record(r);
        std::thread::sleep(outage / 30);
    }
    std::thread::sleep(outage / 3);
    assert!(out.queued() > 0, "nothing waited during the outage");
    assert_eq!(
        received.bodies.lock().unwrap().len(),
        before,
        "delivered while down?"
    );
    let _receiver = serve(&rt, addr, received.clone());
    assert!(
        events_support::wait_until(Duration::from_secs(15), || out.queued() == 0),
        "not delivered after the receiver came back: {} queued",
        out.queued()
    );
    out.flush().unwrap();

    let got = received.bodies.lock().unwrap().clone();
    assert!(got.iter().all(|(_, ok)| *ok), "a signature did not verify");
    let bodies: Vec<Value> = got.into_iter().map(|(b, _)| b).collect();
    let seqs = events_support::in_order_dedup(&events_support::seqs(&bodies));
    assert_eq!(seqs.len(), 40, "every event once: {seqs:?}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gap: {seqs:?}");
    let mut uniq: Vec<&Value> = Vec::new();
    for b in &bodies {
        if !uniq.iter().any(|u| u["seq"] == b["seq"]) {
            uniq.push(b);
        }
    }
    for (i, b) in uniq.iter().enumerate() {
        let person = format!("person-{}", i / 2);
        assert!(b.to_string().contains(&person), "{i}: {b}");
    }

    // A tampered body or another key does not verify.
    let body = br#"{"seq":1}"#;
    let sig = facegate::events_out::webhook::signature(
        SECRET.as_bytes(),
        facegate::gallery::now_ms() / 1000,
        body,
    );
    let mut h = HeaderMap::new();
    h.insert("x-facegate-signature", sig.parse().unwrap());
    assert!(verify(&h, body));
    assert!(!verify(&h, br#"{"seq":2}"#));
    let other = facegate::events_out::webhook::signature(
        b"another-key-entirely-xxxx",
        facegate::gallery::now_ms() / 1000,
        body,
    );
    h.insert("x-facegate-signature", other.parse().unwrap());
    assert!(!verify(&h, body));
}
