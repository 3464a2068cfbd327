//! The outbox: writes to the central store, kept durably in the cache (same sled transaction
//! as the local change) until Milvus has confirmed them, and replayed in order.
//!
//! Entries hold ids, never embeddings: a template upsert reads its vector from the cache at
//! replay time (if the template was deleted meanwhile, the later delete entry covers it), so
//! deleting a person leaves no copy of their face data in the outbox.

use serde::{Deserialize, Serialize};

use super::record::Person;
use super::{GalleryError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    UpsertPerson {
        person: Person,
    },
    /// Tombstone the person and the listed templates.
    DeletePerson {
        id: String,
        templates: Vec<u64>,
        at_ms: i64,
    },
    UpsertTemplates {
        person: String,
        ids: Vec<u64>,
    },
    DeleteTemplates {
        ids: Vec<u64>,
        at_ms: i64,
    },
}

impl Op {
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| GalleryError::Corrupt(format!("outbox encode: {e}")))
    }

    pub fn decode(b: &[u8]) -> Result<Op> {
        serde_json::from_slice(b).map_err(|e| GalleryError::Corrupt(format!("outbox entry: {e}")))
    }

    /// The person an entry would (re)create remotely, if any.
    pub fn creates_for(&self) -> Option<&str> {
        match self {
            Op::UpsertPerson { person } => Some(&person.id),
            Op::UpsertTemplates { person, .. } => Some(person),
            _ => None,
        }
    }
}
