//! [`MilvusStore`] as the gallery's [`RemoteStore`].

use std::collections::HashMap;

use async_trait::async_trait;
use milvus::v2::prelude::*;

use super::rows::{bools, id_list, int64s, strings, vectors};
use super::{
    IDS_PER_FILTER, MilvusStore, PERSON_DOC_MAX, QUERY_LIMIT, check_health, map_err, quote,
    remote_doc,
};
use crate::gallery::record::{Person, Template};
use crate::gallery::remote::{Changes, PersonChange, RemoteStore, TemplateChange};
use crate::gallery::{GalleryError, Match, Result, now_ms};

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
