//! Home Assistant MQTT discovery: the retained config payloads that make the door appear as a
//! `lock`, a `binary_sensor` (door contact) and two `sensor`s (last person, last decision),
//! grouped under one device, each with the availability topic.
//!
//! Topics follow `<discovery_prefix>/<component>/<node_id>/<object_id>/config`, the node id
//! being `mqtt.device_id`. The lock's commands go to `<prefix>/lock/set` through a command
//! template that carries the lock code Home Assistant asks for (the unlock secret), so the
//! secret is never part of a retained config.

use serde_json::{Value, json};

use super::config::MqttConfig;
use super::payload::{CONTACT_TOPIC, DECISION_TOPIC, LOCK_TOPIC, PERSON_TOPIC};

/// Where the lock's commands are published (relative to the topic prefix).
pub const COMMAND_TOPIC: &str = "lock/set";
/// "online" / "offline" (relative to the topic prefix).
pub const AVAILABILITY_TOPIC: &str = "availability";
pub const ONLINE: &str = "online";
pub const OFFLINE: &str = "offline";

/// `prefix/rest`.
pub fn topic(config: &MqttConfig, rest: &str) -> String {
    format!("{}/{rest}", config.topic_prefix)
}

/// Every discovery config: (topic, JSON payload), to publish retained.
pub fn configs(config: &MqttConfig) -> Vec<(String, Value)> {
    let id = &config.device_id;
    let device = json!({
        "identifiers": [format!("facegate_{id}")],
        "name": config.device_name,
        "manufacturer": "facegate",
        "model": "facegate face-ID door controller",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let common = |object: &str, name: &str| {
        json!({
            "name": name,
            "unique_id": format!("facegate_{id}_{object}"),
            "availability_topic": topic(config, AVAILABILITY_TOPIC),
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device.clone(),
            "qos": 1,
        })
    };
    let with = |mut base: Value, extra: Value| {
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        base
    };
    let discovery = |component: &str, object: &str| {
        format!(
            "{}/{component}/{id}/{object}/config",
            config.discovery_prefix
        )
    };
    let mut lock = json!({
        "command_topic": topic(config, COMMAND_TOPIC),
        "state_topic": topic(config, LOCK_TOPIC),
        "payload_lock": "LOCK",
        "payload_unlock": "UNLOCK",
        "state_locked": "LOCKED",
        "state_unlocked": "UNLOCKED",
        "optimistic": false,
        "icon": "mdi:door",
    });
    if config.unlock_command {
        // Home Assistant asks for the code and sends it in the command; facegate checks it.
        lock["code_format"] = json!(format!("^.{{{},}}$", super::config::MIN_SECRET_CHARS));
        lock["command_template"] =
            json!("{\"action\": \"{{ value }}\", \"secret\": {{ code | tojson }}}");
    }
    vec![
        (
            discovery("lock", "door"),
            with(common("door", "Door"), lock),
        ),
        (
            discovery("binary_sensor", "door_contact"),
            with(
                common("door_contact", "Door contact"),
                json!({
                    "state_topic": topic(config, CONTACT_TOPIC),
                    "payload_on": "OPEN",
                    "payload_off": "CLOSED",
                    "device_class": "door",
                }),
            ),
        ),
        (
            discovery("sensor", "last_person"),
            with(
                common("last_person", "Last person"),
                json!({
                    "state_topic": topic(config, PERSON_TOPIC),
                    "icon": "mdi:account",
                }),
            ),
        ),
        (
            discovery("sensor", "last_decision"),
            with(
                common("last_decision", "Last decision"),
                json!({
                    "state_topic": topic(config, DECISION_TOPIC),
                    "value_template": "{{ value_json.outcome }}",
                    "json_attributes_topic": topic(config, DECISION_TOPIC),
                    "icon": "mdi:face-recognition",
                }),
            ),
        ),
    ]
}
