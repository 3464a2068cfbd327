//! The device's gallery: persons and templates in `sled`, searched through an in-memory
//! [`Matrix`] loaded at start-up and kept in step with every write.
//!
//! At rest every person, template and outbox entry is sealed under its person's data key
//! ([`super::sealed`]); deleting a person destroys their key. The matrix is plaintext, in
//! memory only.
//!
//! Flush policy: every write is one sled transaction (the change and its outbox entry
//! together) followed by `flush()` (fsync) before it is acknowledged, so an acknowledged
//! enrollment or removal survives `kill -9` and power loss. Batches share one flush.

mod open;
#[cfg(test)]
pub(crate) mod tests;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use sled::Transactional;
use sled::transaction::TransactionError;

use super::matrix::{Matrix, Scratch};
use super::outbox::Op;
use super::record::{ModelTag, Person, Template};
use super::sealed::PersonKeys;
use super::{GalleryError, Match, Result};

const META_MODEL: &str = "model";
pub(super) const META_FORMAT: &str = "format";
/// Plaintext records (before issue 16); converted by [`super::migrate`] on open.
pub(crate) const FORMAT_PLAIN: &str = "facegate-gallery-1";
/// Sealed records, keys in the key-slot file.
pub const FORMAT: &str = "facegate-gallery-2";
pub(crate) const META_WATERMARK: &str = "sync_watermark_ms";
pub(crate) const META_LAST_SYNC: &str = "last_sync_ms";

pub(super) struct Index {
    matrix: Matrix,
    /// Dense person keys used inside the matrix.
    keys: HashMap<String, u32>,
    names: Vec<String>,
    by_person: HashMap<String, BTreeSet<u64>>,
}

impl Index {
    fn key(&mut self, person: &str) -> u32 {
        if let Some(&k) = self.keys.get(person) {
            return k;
        }
        let k = self.names.len() as u32;
        self.names.push(person.to_owned());
        self.keys.insert(person.to_owned(), k);
        k
    }

    fn insert(&mut self, t: &Template) {
        let k = self.key(&t.person);
        self.matrix.upsert(t.id, k, &t.embedding);
        self.by_person
            .entry(t.person.clone())
            .or_default()
            .insert(t.id);
    }

    pub(super) fn remove(&mut self, id: u64, person: &str) {
        self.matrix.remove(id);
        if let Some(set) = self.by_person.get_mut(person) {
            set.remove(&id);
            if set.is_empty() {
                self.by_person.remove(person);
            }
        }
    }
}

pub(crate) use open::open_db;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The local gallery.
pub struct Cache {
    path: PathBuf,
    db: sled::Db,
    pub(super) persons: sled::Tree,
    pub(super) templates: sled::Tree,
    pub(super) outbox: sled::Tree,
    meta: sled::Tree,
    pub(super) model: ModelTag,
    index: RwLock<Index>,
    pub(super) keys: PersonKeys,
    /// Held shared by everything that seals or opens a person's records, exclusively while a
    /// person's records move to a new key ([`super::removal`]), so that nothing is sealed
    /// under, or opened with, a key being replaced. Shared holds nest (`read_recursive`).
    pub(super) sealing: parking_lot::RwLock<()>,
}

type TxError = TransactionError<GalleryError>;

impl Cache {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn storage(&self, source: sled::Error) -> GalleryError {
        GalleryError::Storage {
            path: self.path.display().to_string(),
            source,
        }
    }

    pub(super) fn tx_error(&self, e: TxError) -> GalleryError {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => self.storage(e),
        }
    }

    pub(super) fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.storage(e))
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// An outbox entry (its sequence number and encoded op) to write in a change's transaction.
    pub(super) fn outbox_entry(&self, op: Option<&Op>) -> Result<Option<(u64, Vec<u8>)>> {
        let Some(op) = op else { return Ok(None) };
        let seq = self.db.generate_id().map_err(|e| self.storage(e))?;
        Ok(Some((seq, self.keys.seal_op(op)?)))
    }

    // ---- persons ----

    pub fn get_person(&self, id: &str) -> Result<Option<Person>> {
        let _sealing = self.sealing.read_recursive();
        self.person_record(id)
    }

    /// [`Cache::get_person`] for a caller that holds `sealing`.
    pub(super) fn person_record(&self, id: &str) -> Result<Option<Person>> {
        match self.persons.get(id).map_err(|e| self.storage(e))? {
            Some(b) => Ok(Some(self.keys.open_person(id, &b)?)),
            None => Ok(None),
        }
    }

    pub fn list_persons(&self, after: Option<&str>, limit: usize) -> Result<Vec<Person>> {
        let _sealing = self.sealing.read_recursive();
        let iter = match after {
            Some(a) => self.persons.range::<&[u8], _>((
                std::ops::Bound::Excluded(a.as_bytes()),
                std::ops::Bound::Unbounded,
            )),
            None => self.persons.iter(),
        };
        let mut out = Vec::new();
        for kv in iter.take(limit) {
            let (k, v) = kv.map_err(|e| self.storage(e))?;
            out.push(self.keys.open_person(&String::from_utf8_lossy(&k), &v)?);
        }
        Ok(out)
    }

    pub fn person_count(&self) -> usize {
        self.persons.len()
    }

    /// Store a person (insert or replace), with an optional outbox entry, durably.
    pub fn put_person(&self, person: &Person, op: Option<&Op>) -> Result<()> {
        person.check()?;
        let _sealing = self.sealing.read_recursive();
        let (_, _, created) = self.keys.get_or_create(&person.id)?;
        let written = self.put_person_sealed(person, op);
        if written.is_err() && created {
            // Not stored: its new key goes (a crash here leaves an orphan slot, destroyed at
            // the next open).
            let _ = self.keys.destroy(&person.id);
        }
        written
    }

    /// Store many persons (insert or replace) in one transaction and one flush, without
    /// outbox entries (bulk loads: conversion, synthetic galleries).
    pub fn put_persons(&self, persons: &[Person]) -> Result<()> {
        for p in persons {
            p.check()?;
        }
        let _sealing = self.sealing.read_recursive();
        let ids: Vec<&str> = persons.iter().map(|p| p.id.as_str()).collect();
        let created = self.keys.get_or_create_many(&ids)?;
        let written = (|| {
            let mut batch = sled::Batch::default();
            for p in persons {
                batch.insert(p.id.as_bytes(), self.keys.seal_person(p)?);
            }
            self.persons
                .apply_batch(batch)
                .map_err(|e| self.storage(e))?;
            self.flush()
        })();
        if written.is_err() {
            for id in &created {
                let _ = self.keys.destroy(id);
            }
        }
        written
    }

    fn put_person_sealed(&self, person: &Person, op: Option<&Op>) -> Result<()> {
        let doc = self.keys.seal_person(person)?;
        let entry = self.outbox_entry(op)?;
        (&self.persons, &self.outbox)
            .transaction(|(p, o)| {
                p.insert(person.id.as_bytes(), doc.as_slice())?;
                if let Some((seq, e)) = &entry {
                    o.insert(&seq.to_be_bytes(), e.as_slice())?;
                }
                Ok(())
            })
            .map_err(|e| self.tx_error(e))?;
        self.flush()
    }

    // ---- templates ----

    pub fn template_ids(&self, person: &str) -> Vec<u64> {
        self.read_index()
            .by_person
            .get(person)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn template(&self, id: u64) -> Result<Option<Template>> {
        let _sealing = self.sealing.read_recursive();
        self.template_record(id)
    }

    /// [`Cache::template`] for a caller that holds `sealing`.
    pub(super) fn template_record(&self, id: u64) -> Result<Option<Template>> {
        match self
            .templates
            .get(id.to_be_bytes())
            .map_err(|e| self.storage(e))?
        {
            Some(b) => Ok(Some(self.keys.open_template(id, &b)?)),
            None => Ok(None),
        }
    }

    pub fn template_count(&self) -> usize {
        self.read_index().matrix.len()
    }

    /// Store templates (insert or replace) with an optional outbox entry, in one transaction
    /// and one flush. Embeddings must already be normalised and of the model's dimension.
    pub fn put_templates(&self, templates: &[Template], op: Option<&Op>) -> Result<()> {
        for t in templates {
            if t.embedding.len() != self.model.dim {
                return Err(GalleryError::Dimension {
                    got: t.embedding.len(),
                    expected: self.model.dim,
                });
            }
        }
        let _sealing = self.sealing.read_recursive();
        let mut batch = sled::Batch::default();
        for t in templates {
            batch.insert(&t.id.to_be_bytes(), self.keys.seal_template(t)?);
        }
        let entry = self.outbox_entry(op)?;
        (&self.templates, &self.outbox)
            .transaction(|(t, o)| {
                t.apply_batch(&batch)?;
                if let Some((seq, e)) = &entry {
                    o.insert(&seq.to_be_bytes(), e.as_slice())?;
                }
                Ok(())
            })
            .map_err(|e| self.tx_error(e))?;
        self.flush()?;
        let mut index = self.write_index();
        for t in templates {
            index.insert(t);
        }
        Ok(())
    }

    // ---- search ----

    /// The best `k` persons for a normalised probe.
    pub fn search(&self, probe: &[f32], k: usize) -> Vec<Match> {
        let index = self.read_index();
        let hits = SCRATCH.with(|s| index.matrix.search(probe, k, &mut s.borrow_mut()));
        hits.into_iter()
            .map(|h| Match {
                person: index.names[h.person as usize].clone(),
                template: h.template,
                score: h.score,
            })
            .collect()
    }

    /// The person's best template for a normalised probe.
    pub fn best_of(&self, person: &str, probe: &[f32]) -> Option<Match> {
        let index = self.read_index();
        let ids = index.by_person.get(person)?;
        ids.iter()
            .filter_map(|&id| {
                index.matrix.score(id, probe).map(|score| Match {
                    person: person.to_owned(),
                    template: id,
                    score,
                })
            })
            .max_by(|a, b| a.score.total_cmp(&b.score))
    }

    pub fn bytes_per_template(&self) -> usize {
        // The sealed record: header (u16 + person id), nonce, ciphertext of the 10-byte
        // header and the floats (+ the person id again), tag; the person id not counted.
        self.read_index().matrix.bytes_per_template()
            + 2
            + 10
            + 4 * self.model.dim
            + crate::crypto::seal::OVERHEAD
    }

    // ---- outbox ----

    /// The oldest `n` outbox entries, in order.
    pub fn outbox_peek(&self, n: usize) -> Result<Vec<(u64, Op)>> {
        let _sealing = self.sealing.read_recursive();
        self.outbox_records(n)
    }

    /// [`Cache::outbox_peek`] for a caller that holds `sealing`.
    pub(super) fn outbox_records(&self, n: usize) -> Result<Vec<(u64, Op)>> {
        let mut out = Vec::new();
        for kv in self.outbox.iter().take(n) {
            let (k, v) = kv.map_err(|e| self.storage(e))?;
            let seq = key_id(&k)?;
            out.push((seq, self.keys.open_op(seq, &v)?));
        }
        Ok(out)
    }

    /// Drop an entry once the central store has confirmed it.
    pub fn outbox_done(&self, seq: u64) -> Result<()> {
        self.outbox
            .remove(seq.to_be_bytes())
            .map_err(|e| self.storage(e))?;
        self.flush()
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Queue an entry on its own (a write that changed nothing locally).
    pub fn outbox_push(&self, op: &Op) -> Result<()> {
        let _sealing = self.sealing.read_recursive();
        let seq = self.db.generate_id().map_err(|e| self.storage(e))?;
        self.outbox
            .insert(seq.to_be_bytes(), self.keys.seal_op(op)?)
            .map_err(|e| self.storage(e))?;
        self.flush()
    }

    // ---- sync bookkeeping ----

    pub fn meta_i64(&self, key: &str) -> Result<i64> {
        Ok(self
            .meta
            .get(key)
            .map_err(|e| self.storage(e))?
            .and_then(|b| b.as_ref().try_into().ok().map(i64::from_be_bytes))
            .unwrap_or(0))
    }

    pub fn set_meta_i64(&self, key: &str, v: i64) -> Result<()> {
        self.meta
            .insert(key, &v.to_be_bytes())
            .map_err(|e| self.storage(e))?;
        self.flush()
    }

    pub fn model_tag(&self) -> &ModelTag {
        &self.model
    }
}

fn key_id(k: &[u8]) -> Result<u64> {
    let b: [u8; 8] = k
        .try_into()
        .map_err(|_| GalleryError::Corrupt(format!("key of {} bytes", k.len())))?;
    Ok(u64::from_be_bytes(b))
}
