//! The central gallery in Milvus (milvus-sdk-rust, ClientV2).
//!
//! Two collections:
//! - templates, one collection per model: `<prefix>_<model>_<dim>d` with `id` (Int64 primary
//!   key = template id), `person_id`, `embedding` (HNSW, COSINE), `deleted`, `updated_ms`;
//! - persons, shared: `<prefix>_persons` with `id` (VarChar primary key), `doc` (the person as
//!   JSON, its name replaced by its id: names stay on the doors, see [`remote_doc`]), `deleted`, `updated_ms`, and a 2-d placeholder vector (Milvus 2.3 requires a vector
//!   field in every collection; it holds nothing).
//!
//! Deletion writes a tombstone (`deleted = true`, the embedding overwritten with a constant
//! vector) so that doors can sync it; the face data itself is gone from the row at once and from
//! disk at Milvus' next compaction. Scores are COSINE similarities, the same as the cache's.
//!
//! Known traps of SDK 3.0.3 with Milvus 2.3.5, each pinned by a test in `tests/milvus.rs`:
//! `get(ids)` and `delete().ids(..)` send a template the server rejects, so every lookup by key
//! is a query with a literal `id in [..]` filter; `SingleResult::rows()` fails on search hits,
//! so hits are read with `get_ids()` / `get_scores()` / `get_output_field()`; the default
//! Bounded consistency hides a write from an immediate search, so searches use Session; HNSW
//! is searched with an explicit `ef`.

mod rows;
mod schema;
mod store;

use rows::int64s;

use milvus::v2::prelude::*;
use tokio::sync::OnceCell;

use super::config::MilvusConfig;
use super::record::{ModelTag, Person};
use super::{GalleryError, Result};

/// Most rows Milvus returns from one query (offset + limit).
pub(crate) const QUERY_LIMIT: usize = 16_384;
/// Ids per `id in [..]` filter.
const IDS_PER_FILTER: usize = 1000;
const PERSON_DOC_MAX: u32 = 65_535;

/// The central store as [`MilvusStore::inspect`] found it.
#[derive(Debug, Clone, PartialEq)]
pub struct MilvusReport {
    pub templates_collection: String,
    pub persons_collection: String,
    pub templates_exists: bool,
    pub persons_exists: bool,
    /// Live (not deleted) templates, when the templates collection exists: the count, or why
    /// it could not be read (a collection not loaded yet, for one).
    pub templates: Option<std::result::Result<u64, String>>,
}

pub struct MilvusStore {
    config: MilvusConfig,
    model: ModelTag,
    templates: String,
    persons: String,
    client: OnceCell<ClientV2>,
}

/// Milvus's own health check: an error unless every component says it is healthy.
async fn check_health(c: &ClientV2) -> Result<()> {
    let req = CheckHealthRequest::builder()
        .build()
        .map_err(|e| map_err("check_health", e))?;
    let h = c
        .check_health(req)
        .await
        .map_err(|e| map_err("check_health", e))?;
    if h.is_healthy() {
        Ok(())
    } else {
        Err(GalleryError::RemoteUnavailable(format!(
            "unhealthy: {:?}",
            h.reasons()
        )))
    }
}
fn map_err(what: &str, e: milvus::v2::error::Error) -> GalleryError {
    use milvus::v2::error::Error as E;
    let msg = format!("{what}: {e}");
    match e {
        E::Grpc(_) | E::Timeout(_) | E::Cancelled(_) | E::RetryExhausted { .. } => {
            GalleryError::RemoteUnavailable(msg)
        }
        _ => GalleryError::Remote(msg),
    }
}

/// Collection-name form of a model name: letters, digits and '_'.
fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A Milvus string literal (person ids are already restricted to `[A-Za-z0-9._-]`).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl MilvusStore {
    pub fn new(config: &MilvusConfig, model: &ModelTag) -> MilvusStore {
        let prefix = &config.collection_prefix;
        MilvusStore {
            config: config.clone(),
            model: model.clone(),
            templates: format!("{prefix}_{}_{}d", name_part(&model.name), model.dim),
            persons: format!("{prefix}_persons"),
            client: OnceCell::new(),
        }
    }

    /// Look at the central store without changing it (no collection is created or loaded):
    /// health, whether facegate's collections exist, and how many live templates there are.
    /// Every call is bounded by `timeout`; the caller should bound the whole too.
    pub async fn inspect(&self, timeout: std::time::Duration) -> Result<MilvusReport> {
        let c = ClientV2::new(&self.connect_config(timeout))
            .await
            .map_err(|e| map_err(&format!("connect to {}", self.config.url), e))?;
        check_health(&c).await?;
        let has = |name: String| {
            let c = &c;
            async move {
                let what = format!("has_collection {name}");
                let req = HasCollectionRequest::builder()
                    .collection_name(name)
                    .build()
                    .map_err(|e| map_err(&what, e))?;
                c.has_collection(req)
                    .await
                    .map(|r| r.exists())
                    .map_err(|e| map_err(&what, e))
            }
        };
        let templates_exists = has(self.templates.clone()).await?;
        let persons_exists = has(self.persons.clone()).await?;
        let templates = if templates_exists {
            let what = format!("count {}", self.templates);
            let counted = async {
                let req = QueryRequest::builder()
                    .collection_name(self.templates.clone())
                    .filter("deleted == false".to_string())
                    .output_fields(["count(*)"])
                    .consistency_level(ConsistencyLevel::Strong)
                    .build()
                    .map_err(|e| map_err(&what, e))?;
                let resp = c.query(req).await.map_err(|e| map_err(&what, e))?;
                Ok::<u64, GalleryError>(
                    int64s(resp.results(), "count(*)")?
                        .first()
                        .copied()
                        .unwrap_or(0) as u64,
                )
            };
            Some(counted.await.map_err(|e| e.to_string()))
        } else {
            None
        };
        Ok(MilvusReport {
            templates_collection: self.templates.clone(),
            persons_collection: self.persons.clone(),
            templates_exists,
            persons_exists,
            templates,
        })
    }

    pub fn templates_collection(&self) -> &str {
        &self.templates
    }

    pub fn persons_collection(&self) -> &str {
        &self.persons
    }

    fn connect_config(&self, timeout: std::time::Duration) -> ConnectConfig {
        let mut cc = ConnectConfig::new()
            .uri(self.config.url.clone())
            .database(self.config.database.clone())
            .connect_timeout(timeout)
            .rpc_timeout(timeout)
            .retry(RetryConfig::new().max_attempts(1));
        if !self.config.token.is_empty() {
            cc = cc.token(self.config.token.clone());
        }
        let path = |p: &std::path::Path| p.display().to_string();
        if self.config.tls() {
            cc = cc.secure(true);
        }
        if !self.config.tls_ca.as_os_str().is_empty() {
            cc = cc.ca_certificate(path(&self.config.tls_ca));
        }
        if !self.config.tls_server_name.is_empty() {
            cc = cc.tls_server_name(self.config.tls_server_name.clone());
        }
        if !self.config.tls_client_cert.as_os_str().is_empty() {
            cc = cc
                .client_certificate(path(&self.config.tls_client_cert))
                .client_key(path(&self.config.tls_client_key));
        }
        cc
    }

    /// The connected client; connects (and creates and loads the collections) on first use.
    pub async fn client(&self) -> Result<&ClientV2> {
        self.client
            .get_or_try_init(|| async {
                let cc = self.connect_config(self.config.write_timeout());
                let client = ClientV2::new(&cc)
                    .await
                    .map_err(|e| map_err(&format!("connect to {}", self.config.url), e))?;
                self.ensure_collections(&client).await?;
                tracing::info!(url = %self.config.url, collection = %self.templates, "milvus connected");
                Ok(client)
            })
            .await
    }
}

/// The person as Milvus gets it: the name replaced by the id (names never leave the door
/// that holds them; the other doors keep the name they know, or show the id). The card number
/// (`external_id`), validity, schedule and metadata go as they are: every door needs them to
/// decide and to send the card number on Wiegand.
pub(crate) fn remote_doc(person: &Person) -> Result<Vec<u8>> {
    let mut p = person.clone();
    p.name = p.id.clone();
    p.to_json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::NewPerson;

    #[test]
    fn milvus_gets_the_id_in_place_of_the_name_and_tls_settings_are_checked() {
        let p = Person::from_new(
            "p-17".into(),
            NewPerson {
                name: "Zelda Quixote".into(),
                external_id: Some("4711".into()),
                ..NewPerson::default()
            },
            1,
        )
        .unwrap();
        let doc = String::from_utf8(remote_doc(&p).unwrap()).unwrap();
        assert!(!doc.contains("Zelda"), "{doc}");
        let back = Person::from_json(doc.as_bytes()).unwrap();
        assert_eq!(
            (back.name.as_str(), back.external_id.as_deref()),
            ("p-17", Some("4711"))
        );

        let mut c = MilvusConfig {
            url: "https://milvus.example:19530".into(),
            ..MilvusConfig::default()
        };
        assert!(c.tls() && c.check().is_ok());
        c.tls_client_cert = "/nonexistent/cert.pem".into();
        assert!(c.check().unwrap_err().contains("go together"));
        c.tls_client_key = "/nonexistent/key.pem".into();
        assert!(c.check().unwrap_err().contains("no such file"));
        let plain = MilvusConfig {
            url: "http://milvus:19530".into(),
            tls_server_name: "milvus.example".into(),
            ..MilvusConfig::default()
        };
        assert!(plain.check().unwrap_err().contains("https://"));
    }
}
