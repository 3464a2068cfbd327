//! MQTT against a real broker (Debian mosquitto, started by scripts/test; tests that need their
//! own start one with scripts/mosquitto): the door's events in order, Home Assistant discovery
//! checked against the documented schema, retained state and availability, nothing queued
//! lost across a broker outage and a facegate restart, and the unlock command.

mod common;
mod events_support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use events_support::ha_schema::check_discovery;
use events_support::{Broker, Door, PrivateBroker, Subscriber, unique, wait_until};
use facegate::access::{Action, AuditLog, EventFilter, Outcome};
use facegate::app::sink::EventSink;
use facegate::events_out::{DoorSide, EventsOut, MqttConfig, Secret, WebhooksConfig};
use serde_json::Value;

const SECRET: &str = "correct-horse-battery-staple";

fn mqtt_section(
    b: &Broker,
    prefix: &str,
    device: &str,
    discovery: &str,
    unlock: bool,
    dir: &std::path::Path,
) -> String {
    let secret_file = dir.join("unlock.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    format!(
        "[mqtt]\nenabled = true\nurl = {:?}\nusername = {:?}\npassword = \"env:FACEGATE_MQTT_PASSWORD\"\n\
         topic_prefix = {prefix:?}\ndevice_id = {device:?}\ndiscovery_prefix = {discovery:?}\n\
         keep_alive_s = 5\nunlock_command = {unlock}\nunlock_secret = \"file:{}\"\n",
        b.url,
        b.user,
        secret_file.display()
    )
}

#[test]
fn door_events_arrive_in_order_with_valid_discovery_and_retained_state() {
    let Some(b) = events_support::broker() else {
        return;
    };
    let dir = common::tmpdir("mqtt-door");
    let prefix = unique("fgtest");
    let device = unique("door").replace('-', "_");
    let discovery = unique("ha");
    let sub = Subscriber::connect(
        &b,
        &unique("sub"),
        &[format!("{prefix}/#"), format!("{discovery}/#")],
        false,
    );
    let config = events_support::config(
        &dir,
        &mqtt_section(&b, &prefix, &device, &discovery, false, &dir),
    );
    // Person A enrolled (from another photo than the frames), B not: a grant and its unlock,
    // then a stranger.
    let frames_src = common::repo().join("frames");
    let frames = events_support::frames(
        &dir,
        &[
            (frames_src.join("02_person_a.jpg"), 6),
            (frames_src.join("06_no_face.jpg"), 10),
            (frames_src.join("09_person_b.jpg"), 6),
            (frames_src.join("07_no_face.jpg"), 4),
        ],
    );
    let mut door = Door::start(
        config,
        &[("person-a", frames_src.join("01_person_a.jpg"))],
        &frames,
        false,
    );
    // Commands are off: a command with the right secret does nothing.
    assert!(wait_until(Duration::from_secs(10), || sub
        .last(&format!("{prefix}/availability"))
        .is_some_and(|m| m.text() == "online")));
    sub.publish(
        &format!("{prefix}/lock/set"),
        &format!("{{\"action\":\"UNLOCK\",\"secret\":\"{SECRET}\"}}"),
        false,
    );
    door.wait_frames_end();
    let audit = Arc::clone(&door.app.audit);
    door.stop();
    assert!(!door.memory.relay_unlocked());

    // Every event, in order, none missing: the audit log's door decisions and unlocks are the
    // MQTT events of those kinds, one for one.
    let events: Vec<Value> = sub
        .on(&format!("{prefix}/events"))
        .iter()
        .map(|m| m.json())
        .collect();
    let seqs = events_support::in_order_dedup(&events_support::seqs(&events));
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "gap in {seqs:?}");
    let mut unique_events: Vec<&Value> = Vec::new();
    for e in &events {
        if !unique_events.iter().any(|u| u["seq"] == e["seq"]) {
            unique_events.push(e);
        }
    }
    let kinds: Vec<String> = unique_events
        .iter()
        .map(|e| match e["kind"].as_str().unwrap() {
            "decision" => format!(
                "decision:{}",
                e["verdict"]["verdict"]
                    .as_str()
                    .or(e["verdict"].as_str())
                    .unwrap_or("?")
            ),
            "door" => format!(
                "door:{}",
                e["event"]["event"]
                    .as_str()
                    .or(e["event"].as_str())
                    .unwrap_or("?")
            ),
            k => panic!("unexpected kind {k}"),
        })
        .collect();
    eprintln!("MQTT events: {kinds:?}");
    for e in &unique_events {
        assert_eq!(e["device"], Value::from(device.clone()));
    }
    let logged = audit
        .query(&EventFilter::default(), None, 100)
        .unwrap()
        .events;
    let decisions = unique_events
        .iter()
        .filter(|e| e["kind"] == "decision")
        .count();
    let unlocks = unique_events
        .iter()
        .filter(|e| {
            e["kind"] == "door"
                && serde_json::to_string(&e["event"])
                    .unwrap()
                    .contains("unlocked")
        })
        .count();
    assert_eq!(
        decisions,
        logged.iter().filter(|e| e.action == Action::Access).count(),
        "{kinds:?}"
    );
    assert_eq!(
        unlocks,
        logged
            .iter()
            .filter(|e| e.outcome == Outcome::Unlocked)
            .count(),
        "{kinds:?}"
    );
    let granted = unique_events
        .iter()
        .position(|e| {
            e["kind"] == "decision" && serde_json::to_string(e).unwrap().contains("person-a")
        })
        .expect("person A's grant was published");
    let unlocked = unique_events
        .iter()
        .position(|e| {
            e["kind"] == "door"
                && serde_json::to_string(&e["event"])
                    .unwrap()
                    .contains("unlocked")
        })
        .expect("the unlock was published");
    let locked = unique_events
        .iter()
        .rposition(|e| {
            e["kind"] == "door"
                && serde_json::to_string(&e["event"])
                    .unwrap()
                    .contains("\"locked\"")
        })
        .expect("the relock was published");
    assert!(granted < locked && unlocked < locked, "{kinds:?}");
    // Only the face opened the door (the command topic is off).
    assert_eq!(unlocks, 1, "{kinds:?}");
    assert!(
        !logged
            .iter()
            .any(|e| e.action == Action::Unlock && e.source == facegate::access::EventSource::Api)
    );

    // Retained state and availability.
    assert_eq!(
        sub.last(&format!("{prefix}/lock/state")).unwrap().text(),
        "LOCKED"
    );
    assert!(
        sub.on(&format!("{prefix}/lock/state"))
            .iter()
            .any(|m| m.text() == "UNLOCKED")
    );
    assert_eq!(
        sub.last(&format!("{prefix}/last/person")).unwrap().text(),
        "person-a"
    );
    let last = sub.last(&format!("{prefix}/last/decision")).unwrap().json();
    assert!(["granted", "denied", "unknown"].contains(&last["outcome"].as_str().unwrap()));
    assert!(
        wait_until(Duration::from_secs(5), || sub
            .last(&format!("{prefix}/availability"))
            .is_some_and(|m| m.text() == "offline")),
        "availability offline at stop"
    );

    // Home Assistant discovery: four configs, valid, consistent, unique ids, one device.
    let mut configs: HashMap<String, Value> = HashMap::new();
    for m in sub
        .messages()
        .iter()
        .filter(|m| m.topic.starts_with(&format!("{discovery}/")))
    {
        assert!(m.retain || !m.payload.is_empty(), "{}", m.topic);
        configs.insert(m.topic.clone(), m.json());
    }
    assert_eq!(configs.len(), 4, "{:?}", configs.keys());
    let mut components = BTreeSet::new();
    let mut unique_ids = BTreeSet::new();
    let mut devices = BTreeSet::new();
    for (topic, payload) in &configs {
        let (component, c) = check_discovery(topic, payload, &discovery, &prefix, &device);
        components.insert(component);
        assert!(
            unique_ids.insert(c["unique_id"].as_str().unwrap().to_owned()),
            "duplicate unique_id"
        );
        devices.insert(c["device"].to_string());
    }
    assert_eq!(
        components.into_iter().collect::<Vec<_>>(),
        ["binary_sensor", "lock", "sensor"]
    );
    assert_eq!(devices.len(), 1, "one device block for every entity");
    let lock = &configs[&format!("{discovery}/lock/{device}/door/config")];
    // The states the lock expects are the ones published.
    assert_eq!(lock["state_locked"], "LOCKED");
    assert_eq!(lock["state_unlocked"], "UNLOCKED");
    assert_eq!(
        lock["state_topic"],
        Value::from(format!("{prefix}/lock/state"))
    );
    assert!(
        lock.get("command_template").is_none(),
        "no code asked while commands are off"
    );
    let decision = &configs[&format!("{discovery}/sensor/{device}/last_decision/config")];
    assert_eq!(decision["value_template"], "{{ value_json.outcome }}");
    let contact = &configs[&format!("{discovery}/binary_sensor/{device}/door_contact/config")];
    assert_eq!(contact["device_class"], "door");
}

#[test]
fn a_broker_outage_and_a_restart_lose_nothing_queued() {
    let dir = common::tmpdir("mqtt-outage");
    let Some(pb) = PrivateBroker::start(&dir) else {
        return;
    };
    let b = pb.broker.clone();
    let prefix = unique("fgout");
    // A persistent session: the broker keeps the QoS 1 events for it across its restart.
    let sub = Subscriber::connect(&b, &unique("outsub"), &[format!("{prefix}/events")], true);
    let key = common::device_key(&dir);
    let audit = Arc::new(AuditLog::open(&dir.join("audit"), 1000, &key).unwrap());
    let mqtt = MqttConfig {
        enabled: true,
        url: b.url.clone(),
        username: b.user.clone(),
        password: Secret::new(b.password.clone()),
        topic_prefix: prefix.clone(),
        device_id: "outage".into(),
        discovery: false,
        keep_alive_s: 5,
        ..MqttConfig::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = || {
        EventsOut::start(
            &mqtt,
            &WebhooksConfig::default(),
            &dir.join("events-out"),
            &key,
            rt.handle(),
            DoorSide {
                door: None,
                audit: Arc::clone(&audit),
            },
        )
        .unwrap()
    };
    let records = events_support::records(30);
    let mut out = start();
    for r in &records[..10] {
        out.record(r);
    }
    assert!(
        wait_until(Duration::from_secs(10), || out.queued() == 0),
        "delivered while up"
    );

    // The broker goes away: events wait on disk, then facegate itself restarts.
    pb.down();
    for r in &records[10..40] {
        out.record(r);
    }
    assert!(out.queued() >= 29, "queued meanwhile: {}", out.queued());
    out.flush().unwrap();
    drop(out);
    let mut out = start();
    assert_eq!(out.queued(), 30, "the queue survived the restart");
    for r in &records[40..] {
        out.record(r);
    }
    pb.up();
    assert!(
        wait_until(Duration::from_secs(30), || out.queued() == 0),
        "not delivered after the broker came back: {} queued",
        out.queued()
    );
    out.flush().unwrap();
    assert!(wait_until(Duration::from_secs(10), || {
        let v: Vec<Value> = sub
            .on(&format!("{prefix}/events"))
            .iter()
            .map(|m| m.json())
            .collect();
        events_support::in_order_dedup(&events_support::seqs(&v)).len() >= 60
    }));
    let v: Vec<Value> = sub
        .on(&format!("{prefix}/events"))
        .iter()
        .map(|m| m.json())
        .collect();
    let seqs = events_support::in_order_dedup(&events_support::seqs(&v));
    assert_eq!(
        seqs.len(),
        60,
        "every event, once each after duplicates: {seqs:?}"
    );
    // The records' own order is kept (person-0, person-0, person-1, ...).
    let mut uniq: Vec<&Value> = Vec::new();
    for e in &v {
        if !uniq.iter().any(|u| u["seq"] == e["seq"]) {
            uniq.push(e);
        }
    }
    for (i, e) in uniq.iter().enumerate() {
        let person = format!("person-{}", i / 2);
        assert!(
            serde_json::to_string(e).unwrap().contains(&person),
            "{i}: {e}"
        );
    }
}

#[test]
fn unlock_command_needs_the_secret_is_audited_and_only_then_opens() {
    let Some(b) = events_support::broker() else {
        return;
    };
    let dir = common::tmpdir("mqtt-unlock");
    let prefix = unique("fgcmd");
    let device = unique("cmd").replace('-', "_");
    let discovery = unique("hacmd");
    let sub = Subscriber::connect(
        &b,
        &unique("cmdsub"),
        &[format!("{prefix}/#"), format!("{discovery}/#")],
        false,
    );
    let config = events_support::config(
        &dir,
        &mqtt_section(&b, &prefix, &device, &discovery, true, &dir),
    );
    let frames = events_support::frames(&dir, &[(common::repo().join("frames/06_no_face.jpg"), 3)]);
    // A command with the right secret left retained on the broker: it reaches the door when it
    // subscribes (and would at every reconnection): refused.
    let command = format!("{prefix}/lock/set");
    let right = format!("{{\"action\":\"UNLOCK\",\"secret\":\"{SECRET}\"}}");
    sub.publish(&command, &right, true);
    std::thread::sleep(Duration::from_millis(300));
    let mut door = Door::start(config, &[], &frames, true);
    let opened = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (opened, watching) = (opened.clone(), watching.clone());
        let memory = door.memory.clone();
        std::thread::spawn(move || {
            while watching.load(Ordering::SeqCst) {
                if memory.relay_unlocked() {
                    opened.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || sub
        .last(&format!("{prefix}/availability"))
        .is_some_and(|m| m.text() == "online")));
    // The lock's discovery config asks Home Assistant for the code, and carries no secret.
    assert!(wait_until(Duration::from_secs(5), || sub
        .last(&format!("{discovery}/lock/{device}/door/config"))
        .is_some()));
    let lock = sub
        .last(&format!("{discovery}/lock/{device}/door/config"))
        .unwrap();
    assert!(!lock.text().contains(SECRET));
    assert!(
        lock.json()["command_template"]
            .as_str()
            .unwrap()
            .contains("code")
    );

    let refusals = |audit: &AuditLog| {
        audit
            .query(&EventFilter::default(), None, 100)
            .unwrap()
            .events
            .into_iter()
            .filter(|e| e.action == Action::Unlock && e.outcome == Outcome::Denied)
            .count()
    };
    let audit = Arc::clone(&door.app.audit);
    let pause = facegate::events_out::command::REFUSAL_PAUSE + Duration::from_millis(300);
    assert!(
        wait_until(Duration::from_secs(5), || refusals(&audit) == 1),
        "the retained command was not audited as refused"
    );
    // Clear it from the broker (an empty retained message; facegate ignores it).
    sub.publish(&command, "", true);
    std::thread::sleep(pause);
    assert!(
        !opened.load(Ordering::SeqCst),
        "the retained command opened the relay"
    );
    for (i, payload) in [
        r#"{"action":"UNLOCK"}"#,
        r#"{"action":"UNLOCK","secret":"correct-horse-battery-stapl"}"#,
        "UNLOCK",
    ]
    .into_iter()
    .enumerate()
    {
        sub.publish(&command, payload, false);
        assert!(
            wait_until(Duration::from_secs(5), || refusals(&audit) == i + 2),
            "command {i} ({payload}) was not audited as refused"
        );
        std::thread::sleep(pause);
        assert!(
            !opened.load(Ordering::SeqCst),
            "command {i} ({payload}) opened the relay"
        );
    }
    sub.publish(&command, &right, false);
    assert!(
        wait_until(Duration::from_secs(5), || opened.load(Ordering::SeqCst)),
        "the right secret did not open"
    );
    assert!(wait_until(Duration::from_secs(5), || sub
        .on(&format!("{prefix}/lock/state"))
        .iter()
        .any(|m| m.text() == "UNLOCKED")));
    watching.store(false, Ordering::SeqCst);
    watcher.join().unwrap();
    door.stop();
    let logged = audit
        .query(&EventFilter::default(), None, 100)
        .unwrap()
        .events;
    let reasons: Vec<String> = logged
        .iter()
        .filter(|e| e.action == Action::Unlock)
        .map(|e| format!("{:?} {}", e.outcome, e.reason.clone().unwrap_or_default()))
        .collect();
    eprintln!("audited: {reasons:?}");
    for why in [
        "no secret",
        "wrong secret",
        "not a JSON object",
        "a retained message",
    ] {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("Denied") && r.contains(why)),
            "{why}: {reasons:?}"
        );
    }
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("Unlocked") && r.contains("mqtt unlock command")),
        "{reasons:?}"
    );
    // Exactly one unlock: the command's, and the door's own record of it.
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("Unlocked") && r.contains("mqtt unlock command"))
            .count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("Unlocked") && r.contains("remote"))
            .count(),
        1,
        "the door's own event: {reasons:?}"
    );
    let events: Vec<Value> = sub
        .on(&format!("{prefix}/events"))
        .iter()
        .map(|m| m.json())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| serde_json::to_string(e).unwrap().contains("remote")),
        "the unlock event went out"
    );
}

#[test]
fn events_reach_a_tls_broker_and_an_untrusted_one_gets_nothing() {
    let dir = common::tmpdir("mqtt-tls");
    // The broker's certificate for 127.0.0.1 (self-signed: the authority facegate trusts), and
    // another one facegate must not accept in its place.
    let server =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let tls = dir.join("mosquitto").join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("server.pem"), server.cert.pem()).unwrap();
    std::fs::write(tls.join("server.key"), server.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), server.cert.pem()).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.cert.pem()).unwrap();
    let Some(pb) = PrivateBroker::start(&dir) else {
        return;
    };
    let b = pb.broker.clone();
    let key = common::device_key(&dir);
    let audit = Arc::new(AuditLog::open(&dir.join("audit"), 1000, &key).unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = |ca: &str, queue: &str| {
        let mqtt = MqttConfig {
            enabled: true,
            url: format!("mqtts://127.0.0.1:{}", b.port),
            username: b.user.clone(),
            password: Secret::new(b.password.clone()),
            ca_file: dir.join(ca),
            topic_prefix: unique("fgtls"),
            device_id: "tls".into(),
            discovery: false,
            keep_alive_s: 5,
            ..MqttConfig::default()
        };
        EventsOut::start(
            &mqtt,
            &WebhooksConfig::default(),
            &dir.join(queue),
            &key,
            rt.handle(),
            DoorSide {
                door: None,
                audit: Arc::clone(&audit),
            },
        )
        .unwrap()
    };
    let records = events_support::records(5);

    // Trusted: every event acknowledged by the broker over TLS.
    let mut out = start("ca.pem", "events-out-trusted");
    for r in &records {
        out.record(r);
    }
    assert!(
        wait_until(Duration::from_secs(20), || out.queued() == 0),
        "not delivered over TLS: {} queued",
        out.queued()
    );
    out.flush().unwrap();
    drop(out);

    // A broker whose certificate is not from the configured authority: nothing is sent, the
    // events wait in the queue.
    let mut out = start("other-ca.pem", "events-out-untrusted");
    for r in &records {
        out.record(r);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        out.queued(),
        records.len(),
        "sent to a broker it does not trust"
    );
    // Plain MQTT to the TLS listener is not accepted either.
    let plain = MqttConfig {
        enabled: true,
        url: format!("mqtt://127.0.0.1:{}", b.port),
        username: b.user.clone(),
        password: Secret::new(b.password.clone()),
        topic_prefix: unique("fgplain"),
        device_id: "plain".into(),
        discovery: false,
        ..MqttConfig::default()
    };
    let mut out = EventsOut::start(
        &plain,
        &WebhooksConfig::default(),
        &dir.join("events-out-plain"),
        &key,
        rt.handle(),
        DoorSide {
            door: None,
            audit: Arc::clone(&audit),
        },
    )
    .unwrap();
    out.record(&records[0]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(out.queued(), 1, "plain MQTT reached a TLS-only listener");
}
