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

use std::collections::HashMap;

use async_trait::async_trait;
use milvus::v2::prelude::*;
use tokio::sync::OnceCell;

use super::config::MilvusConfig;
use super::record::{ModelTag, Person, Template};
use super::remote::{Changes, PersonChange, RemoteStore, TemplateChange};
use super::{GalleryError, Match, Result, now_ms};

/// Most rows Milvus returns from one query (offset + limit).
pub const QUERY_LIMIT: usize = 16_384;
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

    async fn ensure_collections(&self, c: &ClientV2) -> Result<()> {
        let templates = CollectionSchema::new()
            .add_field(
                FieldSchema::new()
                    .name("id")
                    .data_type(DataType::Int64)
                    .primary_key(true)
                    .auto_id(false),
            )
            .add_field(
                FieldSchema::new()
                    .name("person_id")
                    .data_type(DataType::VarChar)
                    .max_length(64),
            )
            .add_field(
                FieldSchema::new()
                    .name("embedding")
                    .data_type(DataType::FloatVector)
                    .dimension(self.model.dim as u32),
            )
            .add_field(FieldSchema::new().name("deleted").data_type(DataType::Bool))
            .add_field(
                FieldSchema::new()
                    .name("updated_ms")
                    .data_type(DataType::Int64),
            );
        let hnsw = IndexParam::new()
            .field_name("embedding")
            .index_type(IndexType::Hnsw)
            .metric_type(MetricType::Cosine)
            .extra_params(HashMap::from([
                ("M".into(), self.config.hnsw_m.to_string()),
                (
                    "efConstruction".into(),
                    self.config.hnsw_ef_construction.to_string(),
                ),
            ]));
        self.ensure_collection(c, &self.templates, templates, hnsw)
            .await?;
        let persons = CollectionSchema::new()
            .add_field(
                FieldSchema::new()
                    .name("id")
                    .data_type(DataType::VarChar)
                    .max_length(64)
                    .primary_key(true)
                    .auto_id(false),
            )
            .add_field(
                FieldSchema::new()
                    .name("doc")
                    .data_type(DataType::VarChar)
                    .max_length(PERSON_DOC_MAX),
            )
            .add_field(FieldSchema::new().name("deleted").data_type(DataType::Bool))
            .add_field(
                FieldSchema::new()
                    .name("updated_ms")
                    .data_type(DataType::Int64),
            )
            .add_field(
                FieldSchema::new()
                    .name("v")
                    .data_type(DataType::FloatVector)
                    .dimension(2),
            );
        let flat = IndexParam::new()
            .field_name("v")
            .index_type(IndexType::Flat)
            .metric_type(MetricType::L2);
        self.ensure_collection(c, &self.persons, persons, flat)
            .await
    }

    async fn ensure_collection(
        &self,
        c: &ClientV2,
        name: &str,
        schema: CollectionSchema,
        index: IndexParam,
    ) -> Result<()> {
        let e = |what: &str| {
            let what = format!("{what} {name}");
            move |err| map_err(&what, err)
        };
        let exists = c
            .has_collection(
                HasCollectionRequest::builder()
                    .collection_name(name)
                    .build()
                    .map_err(e("has_collection"))?,
            )
            .await
            .map_err(e("has_collection"))?
            .exists();
        if !exists {
            c.create_collection(
                CreateCollectionRequest::builder()
                    .collection_name(name)
                    .schema(schema)
                    .num_shards(1)
                    .consistency_level(ConsistencyLevel::Session)
                    .build()
                    .map_err(e("create_collection"))?,
            )
            .await
            .map_err(e("create_collection"))?;
            c.create_index(
                CreateIndexRequest::builder()
                    .collection_name(name)
                    .index_param(index)
                    .sync(true)
                    .build()
                    .map_err(e("create_index"))?,
            )
            .await
            .map_err(e("create_index"))?;
            tracing::info!(collection = name, "milvus collection created");
        }
        c.load_collection(
            LoadCollectionRequest::builder()
                .collection_name(name)
                .build()
                .map_err(e("load_collection"))?,
        )
        .await
        .map_err(e("load_collection"))?;
        Ok(())
    }

    async fn query(
        &self,
        collection: &str,
        filter: String,
        fields: &[&str],
        limit: usize,
        consistency: ConsistencyLevel,
    ) -> Result<QueryResults> {
        let c = self.client().await?;
        let what = format!("query {collection}");
        let mut req = QueryRequest::builder()
            .collection_name(collection)
            .filter(filter)
            .output_fields(fields.iter().copied())
            .consistency_level(consistency);
        // 0: no limit (an aggregate such as count(*)).
        if limit > 0 {
            req = req.limit(limit as i64);
        }
        let req = req.build().map_err(|e| map_err(&what, e))?;
        let resp = c.query(req).await.map_err(|e| map_err(&what, e))?;
        Ok(resp.results().clone())
    }

    async fn upsert(&self, collection: &str, columns: Vec<FieldData>) -> Result<()> {
        let c = self.client().await?;
        let what = format!("upsert into {collection}");
        let insert = InsertRequest::builder()
            .collection_name(collection)
            .columns(columns)
            .build()
            .map_err(|e| map_err(&what, e))?;
        let req = UpsertRequest::builder()
            .insert(insert)
            .build()
            .map_err(|e| map_err(&what, e))?;
        c.upsert(req).await.map_err(|e| map_err(&what, e))?;
        Ok(())
    }

    /// Seal the growing segments and wait until the HNSW index covers at least `rows` rows
    /// (benchmarks: unsealed rows are searched by brute force, not through the index).
    pub async fn flush_and_wait_indexed(&self, rows: usize) -> Result<()> {
        let c = self.client().await?;
        let what = format!("flush {}", self.templates);
        c.flush(
            FlushRequest::builder()
                .collection_names([self.templates.as_str()])
                .wait_flushed_ms(600_000)
                .build()
                .map_err(|e| map_err(&what, e))?,
        )
        .await
        .map_err(|e| map_err(&what, e))?;
        loop {
            let d = c
                .describe_index(
                    DescribeIndexRequest::builder()
                        .collection_name(self.templates.as_str())
                        .build()
                        .map_err(|e| map_err("describe_index", e))?,
                )
                .await
                .map_err(|e| map_err("describe_index", e))?;
            let indexed: i64 = d.indexes().iter().map(|i| i.get_indexed_rows()).sum();
            if indexed >= rows as i64 {
                return Ok(());
            }
            tracing::info!(indexed, rows, "waiting for the HNSW index");
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }

    /// Tombstone rows of the templates collection.
    async fn tombstone_templates(&self, rows: &[(u64, String)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut gone = vec![0.0f32; self.model.dim];
        gone[0] = 1.0;
        for chunk in rows.chunks(IDS_PER_FILTER) {
            self.upsert(
                &self.templates,
                vec![
                    FieldData::int64("id", chunk.iter().map(|r| r.0 as i64).collect()),
                    FieldData::varchar("person_id", chunk.iter().map(|r| r.1.clone()).collect()),
                    FieldData::float_vector("embedding", vec![gone.clone(); chunk.len()]),
                    FieldData::boolean("deleted", vec![true; chunk.len()]),
                    FieldData::int64("updated_ms", vec![now; chunk.len()]),
                ],
            )
            .await?;
        }
        Ok(())
    }

    /// (id, person) of the live template rows matching `filter`.
    async fn live_template_keys(&self, filter: String) -> Result<Vec<(u64, String)>> {
        let r = self
            .query(
                &self.templates,
                format!("({filter}) && deleted == false"),
                &["id", "person_id"],
                QUERY_LIMIT,
                ConsistencyLevel::Strong,
            )
            .await?;
        let ids = int64s(&r, "id")?;
        let persons = strings(&r, "person_id")?;
        Ok(ids.iter().map(|&i| i as u64).zip(persons).collect())
    }
}

fn int64s(r: &QueryResults, name: &str) -> Result<Vec<i64>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_int64()
            .map(<[i64]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not Int64"))),
        None => Ok(Vec::new()),
    }
}

fn strings(r: &QueryResults, name: &str) -> Result<Vec<String>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_varchar()
            .map(<[String]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not VarChar"))),
        None => Ok(Vec::new()),
    }
}

fn bools(r: &QueryResults, name: &str) -> Result<Vec<bool>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_bool()
            .map(<[bool]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not Bool"))),
        None => Ok(Vec::new()),
    }
}

fn vectors(r: &QueryResults, name: &str) -> Result<Vec<Vec<f32>>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_float_vectors()
            .map(<[Vec<f32>]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not FloatVector"))),
        None => Ok(Vec::new()),
    }
}

fn id_list(ids: &[u64]) -> String {
    let v: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("id in [{}]", v.join(","))
}

/// The person as Milvus gets it: the name replaced by the id (names never leave the door
/// that holds them; the other doors keep the name they know, or show the id). The card number
/// (`external_id`), validity, schedule and metadata go as they are: every door needs them to
/// decide and to send the card number on Wiegand.
pub fn remote_doc(person: &Person) -> Result<Vec<u8>> {
    let mut p = person.clone();
    p.name = p.id.clone();
    p.to_json()
}

#[async_trait]
impl RemoteStore for MilvusStore {
    fn describe(&self) -> String {
        format!(
            "Milvus at {} (collection {})",
            self.config.url, self.templates
        )
    }

    fn is_ready(&self) -> bool {
        self.client.initialized()
    }

    async fn connect(&self) -> Result<()> {
        self.client().await.map(|_| ())
    }

    async fn health(&self) -> Result<()> {
        check_health(self.client().await?).await
    }

    async fn upsert_person(&self, person: &Person) -> Result<()> {
        let doc = String::from_utf8(remote_doc(person)?)
            .map_err(|e| GalleryError::Corrupt(format!("person {}: {e}", person.id)))?;
        if doc.len() > PERSON_DOC_MAX as usize {
            return Err(GalleryError::Invalid(format!(
                "person {} is {} bytes as JSON; the central store keeps at most {PERSON_DOC_MAX}",
                person.id,
                doc.len()
            )));
        }
        self.upsert(
            &self.persons,
            vec![
                FieldData::varchar("id", vec![person.id.clone()]),
                FieldData::varchar("doc", vec![doc]),
                FieldData::boolean("deleted", vec![false]),
                FieldData::int64("updated_ms", vec![now_ms()]),
                FieldData::float_vector("v", vec![vec![0.0, 0.0]]),
            ],
        )
        .await
    }

    async fn delete_person(&self, id: &str, templates: &[u64], _at_ms: i64) -> Result<()> {
        let mut rows = self
            .live_template_keys(format!("person_id == {}", quote(id)))
            .await?;
        for &t in templates {
            if !rows.iter().any(|r| r.0 == t) {
                rows.push((t, id.to_owned()));
            }
        }
        self.tombstone_templates(&rows).await?;
        self.upsert(
            &self.persons,
            vec![
                FieldData::varchar("id", vec![id.to_owned()]),
                FieldData::varchar("doc", vec![String::new()]),
                FieldData::boolean("deleted", vec![true]),
                FieldData::int64("updated_ms", vec![now_ms()]),
                FieldData::float_vector("v", vec![vec![0.0, 0.0]]),
            ],
        )
        .await
    }

    async fn upsert_templates(&self, templates: &[Template]) -> Result<()> {
        let now = now_ms();
        for chunk in templates.chunks(IDS_PER_FILTER) {
            self.upsert(
                &self.templates,
                vec![
                    FieldData::int64("id", chunk.iter().map(|t| t.id as i64).collect()),
                    FieldData::varchar(
                        "person_id",
                        chunk.iter().map(|t| t.person.clone()).collect(),
                    ),
                    FieldData::float_vector(
                        "embedding",
                        chunk.iter().map(|t| t.embedding.clone()).collect(),
                    ),
                    FieldData::boolean("deleted", vec![false; chunk.len()]),
                    FieldData::int64("updated_ms", vec![now; chunk.len()]),
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn delete_templates(&self, ids: &[u64], _at_ms: i64) -> Result<()> {
        for chunk in ids.chunks(IDS_PER_FILTER) {
            let mut rows = self.live_template_keys(id_list(chunk)).await?;
            // Ids the store never saw still get a tombstone, so a late replay of their
            // creation from another door's outbox cannot resurrect them unnoticed.
            for &t in chunk {
                if !rows.iter().any(|r| r.0 == t) {
                    rows.push((t, String::new()));
                }
            }
            self.tombstone_templates(&rows).await?;
        }
        Ok(())
    }

    async fn search(&self, probe: &[f32], k: usize) -> Result<Vec<Match>> {
        let c = self.client().await?;
        let what = format!("search {}", self.templates);
        let req = SearchRequest::builder()
            .collection_name(self.templates.as_str())
            .vector_field("embedding")
            .vectors(SearchVectors::Float(vec![probe.to_vec()]))
            .filter("deleted == false")
            .output_fields(["person_id"])
            .limit(k as i64)
            .extra_params(HashMap::from([(
                "ef".into(),
                self.config.hnsw_ef.max(k as u32).to_string(),
            )]))
            .consistency_level(ConsistencyLevel::Session)
            .build()
            .map_err(|e| map_err(&what, e))?;
        let resp = c.search(req).await.map_err(|e| map_err(&what, e))?;
        let mut out = Vec::new();
        for hit in resp.results().iter() {
            let ids = match hit.get_ids() {
                Ids::Int64(v) => v.clone(),
                _ => {
                    return Err(GalleryError::Remote(format!(
                        "{what}: string primary keys in a template collection"
                    )));
                }
            };
            let scores = hit.get_scores();
            let persons = hit
                .get_output_field("person_id")
                .and_then(|f| f.as_varchar())
                .ok_or_else(|| GalleryError::Remote(format!("{what}: no person_id in hits")))?;
            for ((id, score), person) in ids.iter().zip(scores).zip(persons) {
                out.push(Match {
                    person: person.clone(),
                    template: *id as u64,
                    score: *score,
                });
            }
        }
        Ok(out)
    }

    async fn person(&self, id: &str) -> Result<Option<Person>> {
        let r = self
            .query(
                &self.persons,
                format!("id == {} && deleted == false", quote(id)),
                &["id", "doc"],
                1,
                ConsistencyLevel::Strong,
            )
            .await?;
        match strings(&r, "doc")?.first() {
            Some(doc) => Ok(Some(Person::from_json(doc.as_bytes())?)),
            None => Ok(None),
        }
    }

    async fn person_templates(&self, person: &str) -> Result<Vec<Template>> {
        let r = self
            .query(
                &self.templates,
                format!("person_id == {} && deleted == false", quote(person)),
                &["id", "person_id", "embedding", "updated_ms"],
                QUERY_LIMIT,
                ConsistencyLevel::Strong,
            )
            .await?;
        let (ids, vs, ts) = (
            int64s(&r, "id")?,
            vectors(&r, "embedding")?,
            int64s(&r, "updated_ms")?,
        );
        Ok(ids
            .iter()
            .zip(vs)
            .zip(ts)
            .map(|((&id, embedding), updated_ms)| Template {
                id: id as u64,
                person: person.to_owned(),
                embedding,
                updated_ms,
            })
            .collect())
    }

    async fn changes(&self, since_ms: i64, until_ms: i64, limit: usize) -> Result<Option<Changes>> {
        let limit = limit.min(QUERY_LIMIT - 1);
        let window = format!("updated_ms > {since_ms} && updated_ms <= {until_ms}");
        let p = self
            .query(
                &self.persons,
                window.clone(),
                &["id", "doc", "deleted", "updated_ms"],
                limit + 1,
                ConsistencyLevel::Strong,
            )
            .await?;
        let t = self
            .query(
                &self.templates,
                window,
                &["id", "person_id", "embedding", "deleted", "updated_ms"],
                limit + 1,
                ConsistencyLevel::Strong,
            )
            .await?;
        let (pid, pdoc, pdel, pts) = (
            strings(&p, "id")?,
            strings(&p, "doc")?,
            bools(&p, "deleted")?,
            int64s(&p, "updated_ms")?,
        );
        let (tid, tper, tvec, tdel, tts) = (
            int64s(&t, "id")?,
            strings(&t, "person_id")?,
            vectors(&t, "embedding")?,
            bools(&t, "deleted")?,
            int64s(&t, "updated_ms")?,
        );
        if pid.len() > limit || tid.len() > limit {
            return Ok(None);
        }
        let mut changes = Changes::default();
        for (i, id) in pid.iter().enumerate() {
            let deleted = pdel.get(i).copied().unwrap_or(true);
            let person = if deleted {
                None
            } else {
                Some(Person::from_json(
                    pdoc.get(i).map_or(&b""[..], |d| d.as_bytes()),
                )?)
            };
            changes.persons.push(PersonChange {
                id: id.clone(),
                deleted,
                person,
                updated_ms: pts.get(i).copied().unwrap_or(0),
            });
        }
        for (i, id) in tid.iter().enumerate() {
            let deleted = tdel.get(i).copied().unwrap_or(true);
            changes.templates.push(TemplateChange {
                id: *id as u64,
                person: tper.get(i).cloned().unwrap_or_default(),
                deleted,
                embedding: if deleted { None } else { tvec.get(i).cloned() },
                updated_ms: tts.get(i).copied().unwrap_or(0),
            });
        }
        Ok(Some(changes))
    }

    async fn count_templates(&self) -> Result<u64> {
        let r = self
            .query(
                &self.templates,
                "deleted == false".into(),
                &["count(*)"],
                0,
                ConsistencyLevel::Strong,
            )
            .await?;
        Ok(int64s(&r, "count(*)")?.first().copied().unwrap_or(0) as u64)
    }
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
