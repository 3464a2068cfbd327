//! Rows in and out of Milvus: queries, upserts, tombstones, and reading a query's columns.

use milvus::v2::prelude::*;

use super::{IDS_PER_FILTER, MilvusStore, QUERY_LIMIT, map_err};
use crate::gallery::{GalleryError, Result, now_ms};

impl MilvusStore {
    pub(super) async fn query(
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

    pub(super) async fn upsert(&self, collection: &str, columns: Vec<FieldData>) -> Result<()> {
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
    pub(super) async fn tombstone_templates(&self, rows: &[(u64, String)]) -> Result<()> {
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
    pub(super) async fn live_template_keys(&self, filter: String) -> Result<Vec<(u64, String)>> {
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

pub(super) fn int64s(r: &QueryResults, name: &str) -> Result<Vec<i64>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_int64()
            .map(<[i64]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not Int64"))),
        None => Ok(Vec::new()),
    }
}

pub(super) fn strings(r: &QueryResults, name: &str) -> Result<Vec<String>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_varchar()
            .map(<[String]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not VarChar"))),
        None => Ok(Vec::new()),
    }
}

pub(super) fn bools(r: &QueryResults, name: &str) -> Result<Vec<bool>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_bool()
            .map(<[bool]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not Bool"))),
        None => Ok(Vec::new()),
    }
}

pub(super) fn vectors(r: &QueryResults, name: &str) -> Result<Vec<Vec<f32>>> {
    match r.get_output_field(name) {
        Some(f) => f
            .as_float_vectors()
            .map(<[Vec<f32>]>::to_vec)
            .ok_or_else(|| GalleryError::Remote(format!("field {name} is not FloatVector"))),
        None => Ok(Vec::new()),
    }
}

pub(super) fn id_list(ids: &[u64]) -> String {
    let v: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("id in [{}]", v.join(","))
}
