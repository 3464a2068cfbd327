//! Shared by tests/mqtt.rs and tests/webhooks.rs: the real broker (scripts/mosquitto), an MQTT
//! subscriber (rumqttc), a door application started from a config text, synthetic records.
#![allow(dead_code)]

pub mod ha_schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facegate::access::daemon::Record;
use facegate::access::door::{DoorEvent, UnlockBy};
use facegate::access::policy::Verdict;
use facegate::app::App;
use facegate::app::door::DoorApp;
use facegate::config::Config;
use facegate::gallery::NewPerson;
use facegate::hw::{Hardware, HwConfig, MemoryHardware};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use super::common;

/// The broker the tests share (`FACEGATE_MQTT_URL`, started by scripts/test with
/// scripts/mosquitto). Without it the calling test is skipped, except under CI.
#[derive(Clone, Debug)]
pub struct Broker {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

fn user_and_password() -> (String, String) {
    (
        std::env::var("FACEGATE_MQTT_USER").unwrap_or_else(|_| "facegate".into()),
        std::env::var("FACEGATE_MQTT_PASSWORD").unwrap_or_else(|_| "facegate-test-password".into()),
    )
}

pub fn broker() -> Option<Broker> {
    match std::env::var("FACEGATE_MQTT_URL") {
        Ok(u) if !u.is_empty() => {
            let rest = u
                .strip_prefix("mqtt://")
                .expect("FACEGATE_MQTT_URL: mqtt://HOST:PORT");
            let (host, port) = rest.rsplit_once(':').expect("FACEGATE_MQTT_URL: a port");
            let (user, password) = user_and_password();
            Some(Broker {
                url: u.clone(),
                host: host.into(),
                port: port.parse().expect("port"),
                user,
                password,
            })
        }
        _ if common::in_ci() => panic!(
            "FACEGATE_MQTT_URL is not set, and CI=true: the MQTT tests must run in CI (scripts/test \
             starts mosquitto)"
        ),
        _ => {
            eprintln!(
                "SKIPPED: FACEGATE_MQTT_URL not set (run through scripts/test, or `scripts/mosquitto \
                 install && scripts/mosquitto start 18830` and export \
                 FACEGATE_MQTT_URL=mqtt://127.0.0.1:18830)"
            );
            None
        }
    }
}

fn mosquitto_installed() -> bool {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// A broker of the test's own (scripts/mosquitto on a free port), stopped when dropped.
pub struct PrivateBroker {
    pub broker: Broker,
    dir: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn script(args: &[&str]) {
    let out = std::process::Command::new(common::repo().join("scripts/mosquitto"))
        .args(args)
        .output()
        .expect("run scripts/mosquitto");
    assert!(
        out.status.success(),
        "scripts/mosquitto {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PrivateBroker {
    pub fn start(dir: &Path) -> Option<PrivateBroker> {
        if !mosquitto_installed() {
            if common::in_ci() {
                panic!("mosquitto is not installed, and CI=true (scripts/test installs it)");
            }
            eprintln!("SKIPPED: mosquitto not installed (scripts/mosquitto install)");
            return None;
        }
        let port = free_port();
        let (user, password) = user_and_password();
        let b = PrivateBroker {
            broker: Broker {
                url: format!("mqtt://127.0.0.1:{port}"),
                host: "127.0.0.1".into(),
                port,
                user,
                password,
            },
            dir: dir.join("mosquitto"),
        };
        b.up();
        Some(b)
    }

    pub fn up(&self) {
        let port = self.broker.port.to_string();
        script(&["start", &port, self.dir.to_str().expect("utf-8 path")]);
    }

    pub fn down(&self) {
        script(&["stop", &self.broker.port.to_string()]);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new(common::repo().join("scripts/mosquitto"))
            .args(["stop", &self.broker.port.to_string()])
            .output();
    }
}

/// One message received.
#[derive(Clone, Debug)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.topic, self.text()))
    }
}

/// An MQTT client of the test: subscribes to `topics` (QoS 1, again after every reconnection)
/// and keeps everything it receives.
pub struct Subscriber {
    pub client: Client,
    msgs: Arc<Mutex<Vec<Msg>>>,
    subscribed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    /// `persistent`: a session the broker keeps while the subscriber is away (QoS 1 messages
    /// are queued for it).
    pub fn connect(broker: &Broker, id: &str, topics: &[String], persistent: bool) -> Subscriber {
        let mut o = MqttOptions::new(id, broker.host.clone(), broker.port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_clean_session(!persistent);
        o.set_credentials(broker.user.clone(), broker.password.clone());
        let (client, mut connection) = Client::new(o, 64);
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (msgs, subscribed, stop) = (msgs.clone(), subscribed.clone(), stop.clone());
            let client = client.clone();
            let topics = topics.to_vec();
            std::thread::spawn(move || {
                for n in connection.iter() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match n {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for t in &topics {
                                let _ = client.try_subscribe(t.clone(), QoS::AtLeastOnce);
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            subscribed.store(true, Ordering::SeqCst)
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => msgs.lock().unwrap().push(Msg {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        }),
                        Ok(_) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            });
        }
        let s = Subscriber {
            client,
            msgs,
            subscribed,
            stop,
        };
        assert!(
            wait_until(Duration::from_secs(10), || s
                .subscribed
                .load(Ordering::SeqCst)),
            "the test's MQTT client did not subscribe at {}",
            broker.url
        );
        s
    }

    pub fn messages(&self) -> Vec<Msg> {
        self.msgs.lock().unwrap().clone()
    }

    pub fn on(&self, topic: &str) -> Vec<Msg> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }

    pub fn last(&self, topic: &str) -> Option<Msg> {
        self.on(topic).pop()
    }

    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .expect("publish");
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.client.try_disconnect();
    }
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A name no other test (or run) uses.
pub fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        facegate::gallery::now_ms() % 100_000_000
    )
}

/// A configuration: the shipped models, the gallery and device key in `dir`, liveness off at
/// the door (the recorded frames are photos), and `extra`.
pub fn config(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "[vision]\nmodels_dir = {:?}\n[gallery]\npath = {:?}\n{}[liveness]\ndoor = \"off\"\n\
         [access]\ncooldown_s = 2\n{extra}",
        common::repo().join("models").display().to_string(),
        dir.join("gallery").display().to_string(),
        common::key_line(dir),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, &text).expect("write config");
    Config::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A running door application (`facegate run`'s, in process) over recorded frames, on
/// in-memory hardware.
pub struct Door {
    pub app: App,
    pub config: Config,
    pub rt: tokio::runtime::Runtime,
    pub door: Option<DoorApp>,
    pub memory: MemoryHardware,
}

impl Door {
    /// Open the application, enroll `people` (id, photo), start the door over `frames`.
    pub fn start(config: Config, people: &[(&str, PathBuf)], frames: &Path, looping: bool) -> Door {
        let app = App::open(&config).expect("open the application");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut pipeline =
            facegate::vision::Pipeline::new(&app.models, config.vision.params()).expect("pipeline");
        for (id, photo) in people {
            let e = common::embed_largest(&mut pipeline, photo);
            rt.block_on(async {
                let g = &app.gallery.gallery;
                g.create_person(NewPerson {
                    id: Some((*id).into()),
                    name: (*id).into(),
                    ..NewPerson::default()
                })
                .await
                .expect("create person");
                g.add_templates(id, vec![e.0]).await.expect("enroll");
            });
        }
        let cam = facegate::camera::config::CameraConfig {
            source: facegate::camera::SourceKind::Recorded,
            recorded_dir: frames.to_owned(),
            recorded_fps: 8.0,
            recorded_loop: looping,
            ..Default::default()
        };
        cam.check().expect("camera config");
        let mut camera = facegate::camera::Reopening::from_config(&cam);
        camera.open_now().expect("frames");
        let status = camera.status();
        let hw_config = HwConfig {
            unlock_ms: 800,
            ..HwConfig::default()
        };
        let (hw, memory) = Hardware::memory(&hw_config).expect("in-memory hardware");
        let door =
            DoorApp::start(&app, &config, &rt, hw, camera, status, None).expect("start the door");
        Door {
            app,
            config,
            rt,
            door: Some(door),
            memory,
        }
    }

    /// Until the recorded frames end (and the door relocked).
    pub fn wait_frames_end(&self) {
        if let Some(d) = &self.door {
            d.wait(&self.rt, || {});
        }
    }

    /// Stop in order (the sinks drain and flush).
    pub fn stop(&mut self) {
        self.app
            .shutdown
            .trigger(facegate::app::StopReason::Finished);
        if let Some(d) = self.door.take() {
            d.stop(&self.rt).expect("stop the door");
        }
    }
}

/// Copies of `photos`, each `times` over, as a frames folder.
pub fn frames(dir: &Path, photos: &[(PathBuf, usize)]) -> PathBuf {
    let out = dir.join("frames");
    std::fs::create_dir_all(&out).expect("frames dir");
    let mut n = 0;
    for (p, times) in photos {
        for _ in 0..*times {
            std::fs::copy(p, out.join(format!("{n:04}.jpg"))).expect("copy frame");
            n += 1;
        }
    }
    out
}

/// Synthetic records: a decision (granted `person`) and its unlock, `n` pairs.
pub fn records(n: usize) -> Vec<Record> {
    let now = facegate::gallery::now_ms();
    (0..n)
        .flat_map(|i| {
            let at = now + i as i64 * 10;
            let person = format!("person-{i}");
            [
                Record::Decision {
                    at_ms: at,
                    verdict: Verdict::Granted {
                        person: person.clone(),
                        score: 0.8,
                    },
                    quality: None,
                    latency_ms: 12.0,
                    frame: i as u64,
                    liveness: None,
                    face: None,
                },
                Record::Door {
                    at_ms: at + 1,
                    event: DoorEvent::Unlocked {
                        by: UnlockBy::Face { person },
                    },
                    latency_ms: Some(15.0),
                },
            ]
        })
        .collect()
}

/// The `seq` of each event payload, in arrival order.
pub fn seqs(payloads: &[serde_json::Value]) -> Vec<u64> {
    payloads
        .iter()
        .map(|v| v["seq"].as_u64().expect("an event has a seq"))
        .collect()
}

/// Arrival order with duplicates (at-least-once) removed; asserts the rest is strictly
/// increasing.
pub fn in_order_dedup(seqs: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for &s in seqs {
        if out.contains(&s) {
            continue;
        }
        if let Some(&last) = out.last() {
            assert!(s > last, "out of order: {s} after {last} in {seqs:?}");
        }
        out.push(s);
    }
    out
}

/// A webhook receiver's own check of `X-Facegate-Signature` (tests/webhooks.rs,
/// tests/serve_events.rs), written as a receiver would from the README: split the header,
/// recompute HMAC-SHA256(secret, t + "." + body), compare, refuse a timestamp over 5 min old.
pub fn verify_signature(secret: &[u8], headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use hmac::Mac as _;
    let Some(h) = headers
        .get("x-facegate-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in h.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_owned()),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = facegate::gallery::now_ms() / 1000;
    if (now - t.parse::<i64>().unwrap_or(0)).abs() > 300 {
        return false;
    }
    let Ok(want) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v1.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&want).is_ok()
}
