//! The `[api]` section of the configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The documented defaults of the section (part of the main config's default text).
pub const DEFAULT_TOML: &str = r#"
[api]
# Address the HTTP API listens on. Loopback by default: to serve other machines, set e.g.
# "0.0.0.0:8443" and configure TLS below.
listen = "127.0.0.1:8080"
# SHA-256 (hex) of the admin bearer token, needed by every request that changes something and
# by the door endpoints. `facegate init` writes it; `facegate token` makes another. Without it
# `facegate serve` refuses to start: there is never an unauthenticated admin.
admin_token_sha256 = ""
# SHA-256 (hex) of an optional read-only token (list persons and events, verify, identify,
# metrics). Empty: those need the admin token.
viewer_token_sha256 = ""
# PEM certificate chain and private key for HTTPS (rustls). Both empty: plain HTTP.
tls_cert = ""
tls_key = ""
# Largest request body, in bytes (all images of one request together). JSON bodies (a person,
# a change to one) are limited to 64 KiB whatever this says.
max_body_bytes = 16777216
# Seconds a client may take to send a request's headers, and may keep an idle connection
# open between requests; then the connection is closed.
header_timeout_s = 10
# Open connections at most. A new connection beyond it closes the oldest one (once its request,
# if any, is answered), so idle or slow clients cannot lock others out; keep it well below the
# open file limit (LimitNOFILE in board/facegate.service).
max_connections = 256
# Images decoded and searched at once, each on its own thread with its own pipeline.
# 0: one per CPU core.
inference_slots = 0
# Requests that may wait for a free slot; beyond that the API answers 503 with Retry-After
# instead of building a backlog.
queue_depth = 8
# Per-client (IP address) rate limit on verify and identify: a token bucket refilled at
# rate_per_minute, holding at most rate_burst. Excess gets 429 with Retry-After.
rate_per_minute = 600
rate_burst = 30
# The audit log (sled database). Empty: "audit" beside the gallery directory.
audit_path = ""
# Events kept in the audit log; the oldest are dropped beyond it.
audit_max_events = 1000000
"#;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub listen: String,
    pub admin_token_sha256: String,
    pub viewer_token_sha256: String,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub max_body_bytes: usize,
    pub header_timeout_s: u64,
    pub max_connections: usize,
    pub inference_slots: usize,
    pub queue_depth: usize,
    pub rate_per_minute: u32,
    pub rate_burst: u32,
    pub audit_path: PathBuf,
    pub audit_max_events: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8080".into(),
            admin_token_sha256: String::new(),
            viewer_token_sha256: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            max_body_bytes: 16 << 20,
            header_timeout_s: 10,
            max_connections: 256,
            inference_slots: 0,
            queue_depth: 8,
            rate_per_minute: 600,
            rate_burst: 30,
            audit_path: PathBuf::new(),
            audit_max_events: 1_000_000,
        }
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ApiConfig {
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "api.listen = {:?}: write it as IP:PORT, e.g. \"127.0.0.1:8080\"",
                self.listen
            )
        })
    }

    /// Inference slots, with 0 resolved to the number of CPU cores.
    pub fn slots(&self) -> usize {
        if self.inference_slots == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.inference_slots
        }
    }

    pub fn tls(&self) -> Option<(&Path, &Path)> {
        if self.tls_cert.as_os_str().is_empty() {
            None
        } else {
            Some((&self.tls_cert, &self.tls_key))
        }
    }

    /// The audit log's directory: the configured one, else "audit" beside the gallery.
    pub fn audit_path(&self, gallery: &Path) -> PathBuf {
        if !self.audit_path.as_os_str().is_empty() {
            return self.audit_path.clone();
        }
        match gallery.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join("audit"),
            _ => PathBuf::from("audit"),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        self.listen_addr()?;
        for (name, v) in [
            ("admin_token_sha256", &self.admin_token_sha256),
            ("viewer_token_sha256", &self.viewer_token_sha256),
        ] {
            if !v.is_empty() && !is_sha256_hex(v) {
                return Err(format!(
                    "api.{name}: expected 64 hex digits (the SHA-256 of a token, as printed by \
                     `facegate token`), not the token itself"
                ));
            }
        }
        if !self.viewer_token_sha256.is_empty()
            && self
                .viewer_token_sha256
                .eq_ignore_ascii_case(&self.admin_token_sha256)
        {
            return Err(
                "api.viewer_token_sha256 is the admin token's hash: use another token".into(),
            );
        }
        if self.tls_cert.as_os_str().is_empty() != self.tls_key.as_os_str().is_empty() {
            return Err("api.tls_cert and api.tls_key: set both (HTTPS) or neither (HTTP)".into());
        }
        let range = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("api.{name} = {v} is outside {lo}..{hi}"))
            }
        };
        range("max_body_bytes", self.max_body_bytes as u64, 1024, 1 << 30)?;
        range("header_timeout_s", self.header_timeout_s, 1, 3600)?;
        range("max_connections", self.max_connections as u64, 4, 100_000)?;
        range("inference_slots", self.inference_slots as u64, 0, 256)?;
        range("queue_depth", self.queue_depth as u64, 0, 10_000)?;
        range("rate_per_minute", self.rate_per_minute.into(), 1, 1_000_000)?;
        range("rate_burst", self.rate_burst.into(), 1, 1_000_000)?;
        range(
            "audit_max_events",
            self.audit_max_events as u64,
            100,
            100_000_000,
        )?;
        Ok(())
    }
}
