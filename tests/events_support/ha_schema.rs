//! Home Assistant's documented MQTT discovery schema, as the tests check it: the options the
//! MQTT lock, binary_sensor and sensor integrations document, the common entity options, the
//! device block, and the discovery topic's shape.

use serde_json::Value;

const COMMON_OPTIONS: &[&str] = &[
    "name",
    "unique_id",
    "object_id",
    "default_entity_id",
    "availability_topic",
    "availability",
    "availability_mode",
    "availability_template",
    "payload_available",
    "payload_not_available",
    "device",
    "origin",
    "qos",
    "icon",
    "entity_category",
    "enabled_by_default",
    "json_attributes_topic",
    "json_attributes_template",
    "encoding",
    "value_template",
    "entity_picture",
];
const LOCK_OPTIONS: &[&str] = &[
    "command_topic",
    "command_template",
    "state_topic",
    "code_format",
    "optimistic",
    "payload_lock",
    "payload_unlock",
    "payload_open",
    "payload_reset",
    "state_locked",
    "state_unlocked",
    "state_locking",
    "state_unlocking",
    "state_jammed",
    "state_open",
    "state_opening",
    "retain",
];
const BINARY_SENSOR_OPTIONS: &[&str] = &[
    "state_topic",
    "payload_on",
    "payload_off",
    "device_class",
    "expire_after",
    "force_update",
    "off_delay",
];
const SENSOR_OPTIONS: &[&str] = &[
    "state_topic",
    "device_class",
    "state_class",
    "unit_of_measurement",
    "expire_after",
    "force_update",
    "last_reset_value_template",
    "suggested_display_precision",
    "options",
];
const DEVICE_OPTIONS: &[&str] = &[
    "identifiers",
    "connections",
    "name",
    "manufacturer",
    "model",
    "model_id",
    "sw_version",
    "hw_version",
    "serial_number",
    "suggested_area",
    "configuration_url",
    "via_device",
];
const BINARY_SENSOR_CLASSES: &[&str] = &[
    "battery",
    "battery_charging",
    "carbon_monoxide",
    "cold",
    "connectivity",
    "door",
    "garage_door",
    "gas",
    "heat",
    "light",
    "lock",
    "moisture",
    "motion",
    "moving",
    "occupancy",
    "opening",
    "plug",
    "power",
    "presence",
    "problem",
    "running",
    "safety",
    "smoke",
    "sound",
    "tamper",
    "update",
    "vibration",
    "window",
];

fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn topic_ok(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#']) && !t.starts_with('/')
}

/// Check one discovery message against the schema; returns (component, config).
pub fn check_discovery(
    topic: &str,
    payload: &Value,
    discovery: &str,
    prefix: &str,
    device: &str,
) -> (String, Value) {
    // <discovery_prefix>/<component>/<node_id>/<object_id>/config
    let rest = topic
        .strip_prefix(&format!("{discovery}/"))
        .expect("under the discovery prefix");
    let parts: Vec<&str> = rest.split('/').collect();
    assert_eq!(parts.len(), 4, "{topic}");
    let (component, node, object) = (parts[0], parts[1], parts[2]);
    assert_eq!(parts[3], "config", "{topic}");
    assert!(id_ok(node) && id_ok(object), "{topic}: node and object ids");
    assert_eq!(node, device, "{topic}");
    let obj = payload
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: not an object"));
    let specific: &[&str] = match component {
        "lock" => LOCK_OPTIONS,
        "binary_sensor" => BINARY_SENSOR_OPTIONS,
        "sensor" => SENSOR_OPTIONS,
        other => panic!("{topic}: unexpected component {other}"),
    };
    for k in obj.keys() {
        assert!(
            COMMON_OPTIONS.contains(&k.as_str()) || specific.contains(&k.as_str()),
            "{topic}: {k} is not a documented option of an MQTT {component}"
        );
    }
    // Required: the lock's command_topic; a sensor's or binary sensor's state_topic.
    let required = if component == "lock" {
        "command_topic"
    } else {
        "state_topic"
    };
    assert!(
        obj.get(required).and_then(Value::as_str).is_some(),
        "{topic}: {required} is required"
    );
    for (k, v) in obj {
        if k.ends_with("_topic") {
            let t = v
                .as_str()
                .unwrap_or_else(|| panic!("{topic}: {k} is not a string"));
            assert!(
                topic_ok(t) && t.starts_with(&format!("{prefix}/")),
                "{topic}: {k} = {t}"
            );
        }
    }
    assert_eq!(
        obj["availability_topic"],
        Value::from(format!("{prefix}/availability"))
    );
    assert_eq!(obj["payload_available"], "online");
    assert_eq!(obj["payload_not_available"], "offline");
    assert!(
        obj["unique_id"].as_str().is_some_and(|u| !u.is_empty()),
        "{topic}: unique_id"
    );
    assert!(obj["name"].as_str().is_some(), "{topic}: name");
    if let Some(q) = obj.get("qos") {
        assert!(q.as_u64().is_some_and(|q| q <= 2), "{topic}: qos");
    }
    let dev = obj["device"]
        .as_object()
        .unwrap_or_else(|| panic!("{topic}: device"));
    for k in dev.keys() {
        assert!(
            DEVICE_OPTIONS.contains(&k.as_str()),
            "{topic}: device.{k} is not documented"
        );
    }
    let ids = dev["identifiers"]
        .as_array()
        .expect("device.identifiers is a list");
    assert!(
        !ids.is_empty()
            && ids
                .iter()
                .all(|i| i.as_str().is_some_and(|s| !s.is_empty()))
    );
    if component == "binary_sensor" {
        let class = obj["device_class"].as_str().unwrap_or("");
        assert!(
            BINARY_SENSOR_CLASSES.contains(&class),
            "{topic}: device_class {class}"
        );
    }
    (component.to_owned(), payload.clone())
}
