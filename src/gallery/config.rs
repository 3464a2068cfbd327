//! `[gallery]` and `[milvus]` configuration sections.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The documented defaults of both sections (part of the main config's default text).
pub const DEFAULT_TOML: &str = r#"
[gallery]
# Where the device's gallery (sled database: persons, face templates, outbox, sync state)
# lives. Empty: /var/lib/facegate/gallery when /var/lib/facegate exists and is writable,
# else ./facegate-data/gallery.
path = ""
# The device key that seals the gallery and the audit log at rest (64 hex digits, mode
# 0600, made by `facegate init`, or at the first start when there is no gallery yet); keep
# it outside the data folders, and a copy of it apart from the device (without it the data
# cannot be read). Empty: the systemd credential "facegate-device-key" when the service has
# one (LoadCredential= / LoadCredentialEncrypted=), else /etc/facegate/device.key when
# /etc/facegate exists, else ./facegate-device.key.
key_file = ""
# How many candidates an identification returns.
top_k = 5

[milvus]
# The central gallery shared by every door, as "http://host:19530". Empty: this door is
# standalone and its local gallery is the only one.
url = ""
# "user:password" or an API token; empty for a server without authentication. Send it
# over TLS only (an https:// url): Milvus sees it in every call.
token = ""
# TLS: an "https://" url turns it on (the server is checked against the system's roots).
# A PEM file of the CA that signed Milvus' certificate, instead of the system's roots.
tls_ca = ""
# The name in Milvus' certificate, when it is not the url's host.
tls_server_name = ""
# Mutual TLS: this door's certificate and its key (PEM files), both or neither.
tls_client_cert = ""
tls_client_key = ""
# Milvus database holding facegate's collections.
database = "default"
# Prefix of the collection names; the templates go to "<prefix>_<model>_<dim>d" and the
# persons to "<prefix>_persons".
collection_prefix = "facegate"
# Longest wait for a search on a cache miss before the door decides from the cache alone.
search_timeout_ms = 300
# Longest wait for a write, a sync page or a connection.
write_timeout_ms = 5000
# After this many failures in a row, stop asking Milvus for breaker_cooldown_ms (the
# circuit breaker), then try one call again.
breaker_failures = 3
breaker_cooldown_ms = 10000
# Pull changes (new templates, revocations, deletions) and replay the outbox this often.
sync_interval_s = 30
# Changes are pulled from this long before the last watermark too, so that writes from
# doors with a slightly slow clock are not missed.
sync_overlap_s = 300
# After this long without a successful sync, apply offline_policy.
max_offline_s = 86400
# "keep_admitting": go on deciding from the local gallery (it may miss revocations made
# since); "admit_nobody": refuse everyone until the central store is back.
offline_policy = "keep_admitting"
# HNSW index: graph degree, build-time and search-time candidate lists. ef below ~64
# loses recall at 100k templates.
hnsw_m = 16
hnsw_ef_construction = 200
hnsw_ef = 64
"#;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GalleryConfig {
    pub path: PathBuf,
    pub key_file: PathBuf,
    pub top_k: usize,
}

impl Default for GalleryConfig {
    fn default() -> Self {
        GalleryConfig {
            path: PathBuf::new(),
            key_file: PathBuf::new(),
            top_k: 5,
        }
    }
}

impl GalleryConfig {
    /// The gallery directory (see the documented default).
    pub fn path(&self) -> PathBuf {
        if !self.path.as_os_str().is_empty() {
            return self.path.clone();
        }
        let system = PathBuf::from("/var/lib/facegate");
        let writable = std::fs::metadata(&system)
            .map(|m| m.is_dir() && !m.permissions().readonly())
            .unwrap_or(false);
        if writable {
            system.join("gallery")
        } else {
            PathBuf::from("facegate-data/gallery")
        }
    }

    /// Where the device key is read from (see the documented default).
    pub fn key_source(&self) -> crate::crypto::KeySource {
        crate::crypto::KeySource::resolve(&self.key_file)
    }

    pub fn check(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.top_k) {
            return Err(format!("gallery.top_k = {} is outside 1..100", self.top_k));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflinePolicy {
    KeepAdmitting,
    AdmitNobody,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MilvusConfig {
    pub url: String,
    pub token: String,
    pub tls_ca: PathBuf,
    pub tls_server_name: String,
    pub tls_client_cert: PathBuf,
    pub tls_client_key: PathBuf,
    pub database: String,
    pub collection_prefix: String,
    pub search_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
    pub sync_interval_s: u64,
    pub sync_overlap_s: u64,
    pub max_offline_s: u64,
    pub offline_policy: OfflinePolicy,
    pub hnsw_m: u32,
    pub hnsw_ef_construction: u32,
    pub hnsw_ef: u32,
}

impl Default for MilvusConfig {
    fn default() -> Self {
        MilvusConfig {
            url: String::new(),
            token: String::new(),
            tls_ca: PathBuf::new(),
            tls_server_name: String::new(),
            tls_client_cert: PathBuf::new(),
            tls_client_key: PathBuf::new(),
            database: "default".into(),
            collection_prefix: "facegate".into(),
            search_timeout_ms: 300,
            write_timeout_ms: 5000,
            breaker_failures: 3,
            breaker_cooldown_ms: 10_000,
            sync_interval_s: 30,
            sync_overlap_s: 300,
            max_offline_s: 86_400,
            offline_policy: OfflinePolicy::KeepAdmitting,
            hnsw_m: 16,
            hnsw_ef_construction: 200,
            hnsw_ef: 64,
        }
    }
}

impl MilvusConfig {
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Whether the connection uses TLS (an https:// url or any TLS setting).
    pub fn tls(&self) -> bool {
        self.url.starts_with("https://")
            || !self.tls_ca.as_os_str().is_empty()
            || !self.tls_server_name.is_empty()
            || !self.tls_client_cert.as_os_str().is_empty()
    }

    pub fn search_timeout(&self) -> Duration {
        Duration::from_millis(self.search_timeout_ms)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.write_timeout_ms)
    }

    pub fn check(&self) -> Result<(), String> {
        let range = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("milvus.{name} = {v} is outside {lo}..{hi}"))
            }
        };
        if self.enabled() && !(self.url.starts_with("http://") || self.url.starts_with("https://"))
        {
            return Err(format!(
                "milvus.url = {:?}: write it as http://host:19530 or https://host:19530",
                self.url
            ));
        }
        let set = |p: &PathBuf| !p.as_os_str().is_empty();
        if set(&self.tls_client_cert) != set(&self.tls_client_key) {
            return Err(
                "milvus.tls_client_cert and milvus.tls_client_key go together: set both or neither"
                    .into(),
            );
        }
        if self.enabled() && self.url.starts_with("http://") && self.tls() {
            return Err(format!(
                "milvus.url = {:?} is plain http while TLS settings are given: write https://",
                self.url
            ));
        }
        for (name, p) in [
            ("tls_ca", &self.tls_ca),
            ("tls_client_cert", &self.tls_client_cert),
            ("tls_client_key", &self.tls_client_key),
        ] {
            if set(p) && self.enabled() && !p.is_file() {
                return Err(format!("milvus.{name} = {:?}: no such file", p.display()));
            }
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && s.as_bytes()[0].is_ascii_alphabetic()
        };
        if !name_ok(&self.collection_prefix) {
            return Err(format!(
                "milvus.collection_prefix = {:?}: use letters, digits and '_', starting with a letter",
                self.collection_prefix
            ));
        }
        range("search_timeout_ms", self.search_timeout_ms, 10, 60_000)?;
        range("write_timeout_ms", self.write_timeout_ms, 100, 600_000)?;
        range("breaker_failures", self.breaker_failures.into(), 1, 1000)?;
        range(
            "breaker_cooldown_ms",
            self.breaker_cooldown_ms,
            100,
            3_600_000,
        )?;
        range("sync_interval_s", self.sync_interval_s, 1, 86_400)?;
        range("sync_overlap_s", self.sync_overlap_s, 0, 86_400)?;
        range("max_offline_s", self.max_offline_s, 60, 365 * 86_400)?;
        range("hnsw_m", self.hnsw_m.into(), 4, 64)?;
        range(
            "hnsw_ef_construction",
            self.hnsw_ef_construction.into(),
            8,
            1024,
        )?;
        range("hnsw_ef", self.hnsw_ef.into(), 1, 32768)?;
        Ok(())
    }
}
