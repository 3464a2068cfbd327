//! Facegate's two Milvus collections: their schemas and indexes, created and loaded on first
//! connection.

use std::collections::HashMap;

use milvus::v2::prelude::*;

use super::{MilvusStore, PERSON_DOC_MAX, map_err};
use crate::gallery::Result;

impl MilvusStore {
    pub(super) async fn ensure_collections(&self, c: &ClientV2) -> Result<()> {
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
}
