//! The `[mqtt]` and `[webhooks]` sections of the configuration, and the secrets they name.

use serde::Deserialize;
use zeroize::Zeroizing;

/// The documented defaults of both sections (part of the main config's default text).
pub const DEFAULT_TOML: &str = r#"
[mqtt]
# Publish every door decision and door event to an MQTT broker (QoS 1), with Home Assistant
# discovery (`facegate serve`: every API request's event, no Home Assistant entities). Events wait in a sealed on-disk queue ("events-out" beside the audit log) while
# the broker is away; the door never waits for the broker.
enabled = false
# The broker: mqtt://HOST:PORT (plain TCP, default port 1883) or mqtts://HOST:PORT (TLS,
# default port 8883).
url = "mqtt://127.0.0.1:1883"
# MQTT client id. Empty: "facegate-" followed by device_id.
client_id = ""
# Broker user name and password (both empty: no authentication). A secret is written
# "env:NAME" (read from that environment variable), "file:/path" (the file's content, a
# trailing newline removed) or as the value itself; secrets are never logged.
username = ""
password = ""
# For mqtts://: a PEM file of the certificate authorities to trust. Empty: the system's
# (/etc/ssl/certs).
ca_file = ""
# Topics start with this prefix: PREFIX/events (every record, as JSON, in order),
# PREFIX/availability ("online", retained; "offline" as the last will), PREFIX/lock/state,
# PREFIX/door/contact, PREFIX/last/person and PREFIX/last/decision (retained states).
topic_prefix = "facegate"
# This door's id: in Home Assistant's unique ids and discovery topics (letters, digits,
# "_" and "-").
device_id = "facegate"
# The device's name in Home Assistant.
device_name = "facegate door"
# Publish Home Assistant MQTT discovery configs (a lock, a door contact binary_sensor, last
# person and last decision sensors), retained, under discovery_prefix.
discovery = true
discovery_prefix = "homeassistant"
# Seconds between keep-alive pings; the broker declares the door offline (last will) after
# 1.5 times this without a word.
keep_alive_s = 30
# Events kept in the on-disk queue while the broker cannot be reached; beyond it the oldest
# are dropped (counted in a warning).
queue_max_events = 10000
# Accept unlock commands on PREFIX/lock/set: a JSON object {"action": "UNLOCK", "secret":
# "..."}. Off by default. Every command is audited (granted or refused); a command without the
# right secret never opens the door. Retained commands are refused.
unlock_command = false
# The shared secret an unlock command must carry (at least 16 characters; env:/file: as for
# password). Required when unlock_command = true. In Home Assistant it is the lock's code.
unlock_secret = ""

[webhooks]
# POST every door decision and door event (`facegate serve`: every API request's event) as
# JSON to each URL, signed with HMAC-SHA256
# (header X-Facegate-Signature: t=UNIX_SECONDS,v1=HEX, over "t.body"; see the README), in
# order per URL, retried with exponential backoff from a sealed on-disk queue. Empty: off.
urls = []
# The HMAC key shared with the receivers (at least 16 characters; env:/file: as for
# mqtt.password). Required when urls is not empty.
secret = ""
# Milliseconds a receiver may take to answer one POST.
timeout_ms = 5000
# Backoff after a failed delivery: doubles from retry_initial_ms up to retry_max_ms.
retry_initial_ms = 1000
retry_max_ms = 300000
# Events kept per URL while its receiver fails; beyond it the oldest are dropped (counted in
# a warning).
queue_max_events = 10000
"#;

/// A secret named in the configuration: `env:NAME`, `file:/path`, or the value itself. Its
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(empty)")
        } else {
            f.write_str("Secret(..)")
        }
    }
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The secret's value; `key` names the setting in errors (which never show the value).
    pub fn resolve(&self, key: &str) -> Result<Zeroizing<String>, String> {
        if let Some(name) = self.0.strip_prefix("env:") {
            return std::env::var(name)
                .map(Zeroizing::new)
                .map_err(|_| format!("{key}: environment variable {name} is not set"));
        }
        if let Some(path) = self.0.strip_prefix("file:") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{key}: cannot read {path}: {e}"))?;
            let text = Zeroizing::new(text);
            return Ok(Zeroizing::new(
                text.strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text)
                    .to_owned(),
            ));
        }
        Ok(Zeroizing::new(self.0.clone()))
    }
}

/// Shortest accepted unlock secret and webhook key.
pub const MIN_SECRET_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    pub enabled: bool,
    pub url: String,
    pub client_id: String,
    pub username: String,
    pub password: Secret,
    pub ca_file: std::path::PathBuf,
    pub topic_prefix: String,
    pub device_id: String,
    pub device_name: String,
    pub discovery: bool,
    pub discovery_prefix: String,
    pub keep_alive_s: u64,
    pub queue_max_events: usize,
    pub unlock_command: bool,
    pub unlock_secret: Secret,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            enabled: false,
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: String::new(),
            username: String::new(),
            password: Secret::default(),
            ca_file: std::path::PathBuf::new(),
            topic_prefix: "facegate".into(),
            device_id: "facegate".into(),
            device_name: "facegate door".into(),
            discovery: true,
            discovery_prefix: "homeassistant".into(),
            keep_alive_s: 30,
            queue_max_events: 10_000,
            unlock_command: false,
            unlock_secret: Secret::default(),
        }
    }
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

fn topic_ok(t: &str) -> bool {
    !t.is_empty() && !t.contains(['+', '#', '\0']) && !t.starts_with('/') && !t.ends_with('/')
}

impl MqttConfig {
    pub fn broker(&self) -> Result<Broker, String> {
        let bad = || {
            format!(
                "mqtt.url = {:?}: write it as mqtt://HOST:PORT or mqtts://HOST:PORT",
                self.url
            )
        };
        let (tls, rest) = if let Some(r) = self.url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = self.url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| bad())?)
            }
            _ => (rest, if tls { 8883 } else { 1883 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(bad());
        }
        Ok(Broker {
            host: host.to_owned(),
            port,
            tls,
        })
    }

    pub fn client_id(&self) -> String {
        if self.client_id.is_empty() {
            format!("facegate-{}", self.device_id)
        } else {
            self.client_id.clone()
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.broker()?;
        if !topic_ok(&self.topic_prefix) {
            return Err(format!(
                "mqtt.topic_prefix = {:?}: a topic without wildcards (+ #) nor a leading or \
                 trailing /",
                self.topic_prefix
            ));
        }
        if !topic_ok(&self.discovery_prefix) {
            return Err(format!(
                "mqtt.discovery_prefix = {:?}: a topic without wildcards (+ #) nor a leading or \
                 trailing /",
                self.discovery_prefix
            ));
        }
        if self.device_id.is_empty()
            || !self
                .device_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "mqtt.device_id = {:?}: use letters, digits, _ and - only",
                self.device_id
            ));
        }
        if !(5..=3600).contains(&self.keep_alive_s) {
            return Err(format!(
                "mqtt.keep_alive_s = {} is outside 5..3600",
                self.keep_alive_s
            ));
        }
        if self.queue_max_events == 0 {
            return Err("mqtt.queue_max_events must be at least 1".into());
        }
        if self.username.is_empty() != self.password.is_empty() {
            return Err("mqtt.username and mqtt.password: set both or neither".into());
        }
        if self.unlock_command && self.unlock_secret.is_empty() {
            return Err(
                "mqtt.unlock_command = true needs mqtt.unlock_secret (at least 16 characters)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    pub urls: Vec<String>,
    pub secret: Secret,
    pub timeout_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub queue_max_events: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            urls: Vec::new(),
            secret: Secret::default(),
            timeout_ms: 5000,
            retry_initial_ms: 1000,
            retry_max_ms: 300_000,
            queue_max_events: 10_000,
        }
    }
}

impl WebhooksConfig {
    pub fn check(&self) -> Result<(), String> {
        for u in &self.urls {
            if !(u.starts_with("http://") || u.starts_with("https://"))
                || reqwest::Url::parse(u).is_err()
            {
                return Err(format!(
                    "webhooks.urls: {u:?} is not an http:// or https:// URL"
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.urls.iter().find(|u| !seen.insert(u.as_str())) {
            return Err(format!("webhooks.urls: {dup:?} is listed twice"));
        }
        if !self.urls.is_empty() && self.secret.is_empty() {
            return Err(
                "webhooks.urls is set: webhooks.secret is required (at least 16 characters)".into(),
            );
        }
        if !(100..=120_000).contains(&self.timeout_ms) {
            return Err(format!(
                "webhooks.timeout_ms = {} is outside 100..120000",
                self.timeout_ms
            ));
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return Err(
                "webhooks.retry_initial_ms must be at least 1 and at most retry_max_ms".into(),
            );
        }
        if self.queue_max_events == 0 {
            return Err("webhooks.queue_max_events must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let c = |url: &str| MqttConfig {
            url: url.into(),
            ..MqttConfig::default()
        };
        assert_eq!(
            c("mqtt://127.0.0.1:1884").broker().unwrap(),
            Broker {
                host: "127.0.0.1".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(c("mqtts://broker.lan").broker().unwrap().port, 8883);
        assert_eq!(c("mqtt://[::1]:1883").broker().unwrap().host, "::1");
        assert!(c("tcp://x:1").broker().is_err());
        assert!(c("mqtt://:1883").broker().is_err());
        assert!(c("mqtt://host:99999").broker().is_err());
    }

    #[test]
    fn secrets_resolve_and_never_print() {
        let s = Secret::new("env:FACEGATE_TEST_SECRET_THAT_IS_NOT_SET");
        let e = s.resolve("mqtt.password").unwrap_err();
        assert!(e.contains("FACEGATE_TEST_SECRET_THAT_IS_NOT_SET"), "{e}");
        let dir = std::env::temp_dir().join(format!("facegate-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret-from-a-file\n").unwrap();
        let s = Secret::new(format!("file:{}", dir.display()));
        assert_eq!(s.resolve("k").unwrap().as_str(), "s3cret-from-a-file");
        let _ = std::fs::remove_file(&dir);
        let lit = Secret::new("literal-secret-value");
        assert_eq!(lit.resolve("k").unwrap().as_str(), "literal-secret-value");
        assert!(!format!("{lit:?}").contains("literal"));
    }

    #[test]
    fn every_key_is_documented_and_unknown_keys_are_refused() {
        let keys = |section: &str| -> Vec<String> {
            let table: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
            table[section].as_table().unwrap().keys().cloned().collect()
        };
        // As many documented keys as fields (a field added without its documentation, or
        // documented under another name, fails here or in the parse below).
        assert_eq!(keys("mqtt").len(), 15, "{:?}", keys("mqtt"));
        assert_eq!(keys("webhooks").len(), 6, "{:?}", keys("webhooks"));
        let c = crate::config::Config::parse(DEFAULT_TOML, std::path::Path::new("d")).unwrap();
        assert_eq!(c.mqtt, MqttConfig::default());
        assert_eq!(c.webhooks, WebhooksConfig::default());
        let e = crate::config::Config::parse("[mqtt]\ntopic_prefx = \"x\"\n", "c".as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `topic_prefix`"), "{e}");
        let e = crate::config::Config::parse("[webhooks]\nurl = []\n", "c".as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean `urls`"), "{e}");
    }

    #[test]
    fn unlock_needs_a_secret_and_webhooks_a_key() {
        let m = MqttConfig {
            unlock_command: true,
            ..MqttConfig::default()
        };
        assert!(m.check().unwrap_err().contains("unlock_secret"));
        let w = WebhooksConfig {
            urls: vec!["http://127.0.0.1:9/hook".into()],
            ..WebhooksConfig::default()
        };
        assert!(w.check().unwrap_err().contains("webhooks.secret"));
        let w = WebhooksConfig {
            urls: vec!["ftp://x".into()],
            ..WebhooksConfig::default()
        };
        assert!(w.check().is_err());
    }
}
