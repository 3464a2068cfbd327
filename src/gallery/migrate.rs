//! Conversion of a plaintext gallery (format `facegate-gallery-1`, before records were
//! sealed) into a sealed one, on the first open with a device key.
//!
//! The sealed copy is written beside the gallery (`<dir>.migrating`), flushed and marked
//! complete; then the folders are swapped by two renames (`<dir>` → `<dir>.plaintext`,
//! `<dir>.migrating` → `<dir>`) and the plaintext folder is deleted. The original is never
//! modified, so a crash at any point loses nothing: [`prepare`] finishes an interrupted swap,
//! or starts the copy again. Writing a new database (rather than sealing records in place)
//! also leaves none of the plaintext in the stale pages sled keeps in its files.

use std::path::{Path, PathBuf};

use super::cache::{Cache, FORMAT_PLAIN, META_LAST_SYNC, META_WATERMARK};
use super::outbox::Op;
use super::record::{ModelTag, Person, Template};
use super::{GalleryError, Result};
use crate::crypto::DeviceKey;

const META_COMPLETE: &str = "migration_complete";
/// Templates written per transaction during the copy.
const BATCH: usize = 512;

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn io(path: &Path, e: std::io::Error) -> GalleryError {
    GalleryError::Storage {
        path: path.display().to_string(),
        source: sled::Error::Io(e),
    }
}

fn storage(path: &Path) -> impl Fn(sled::Error) -> GalleryError + '_ {
    move |source| GalleryError::Storage {
        path: path.display().to_string(),
        source,
    }
}

/// The database at `path` (a lock held by another process is [`GalleryError::InUse`]).
fn open_raw(path: &Path) -> Result<sled::Db> {
    super::cache::open_db(path)
}

/// Whether the copy at `dir` was finished.
fn complete(dir: &Path) -> Result<bool> {
    if !dir.join("db").is_file() {
        return Ok(false);
    }
    let db = open_raw(dir)?;
    let meta = db.open_tree("meta").map_err(storage(dir))?;
    meta.contains_key(META_COMPLETE).map_err(storage(dir))
}

/// Whether the gallery at `path` holds plaintext records.
pub fn is_plaintext(path: &Path) -> Result<bool> {
    if !path.join("db").is_file() {
        return Ok(false);
    }
    let db = open_raw(path)?;
    let meta = db.open_tree("meta").map_err(storage(path))?;
    let persons = db.open_tree("persons").map_err(storage(path))?;
    Ok(match meta.get("format").map_err(storage(path))? {
        Some(f) => f.as_ref() == FORMAT_PLAIN.as_bytes(),
        // Galleries before the format record: plaintext if they hold anything.
        None => !persons.is_empty() && !path.join(super::sealed::SLOTS_FILE).exists(),
    })
}

/// Finish an interrupted conversion, or convert a plaintext gallery at `path`.
pub fn prepare(path: &Path, model: &ModelTag, device: &DeviceKey) -> Result<()> {
    let tmp = sibling(path, ".migrating");
    let old = sibling(path, ".plaintext");
    if !path.exists() {
        if tmp.exists() && complete(&tmp)? {
            std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
            crate::crypto::fsmode::sync_parent(path);
        } else if old.exists() {
            std::fs::rename(&old, path).map_err(|e| io(path, e))?;
            crate::crypto::fsmode::sync_parent(path);
        }
    }
    if old.exists() && path.exists() && !is_plaintext(path)? {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
        tracing::info!(path = %old.display(), "plaintext gallery removed after conversion");
    }
    if !is_plaintext(path)? {
        return Ok(());
    }
    if tmp.exists() {
        // An earlier conversion was cut short: start again from the untouched original.
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    let started = std::time::Instant::now();
    let (persons, templates) = copy(path, &tmp, model, device)?;
    std::fs::rename(path, &old).map_err(|e| io(path, e))?;
    crate::crypto::fsmode::sync_parent(path);
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    crate::crypto::fsmode::sync_parent(path);
    std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    tracing::info!(
        path = %path.display(),
        persons,
        templates,
        ms = started.elapsed().as_millis() as u64,
        "plaintext gallery converted to sealed records"
    );
    Ok(())
}

/// Copy the plaintext gallery at `from` into a new sealed one at `to`; returns (persons,
/// templates).
fn copy(from: &Path, to: &Path, model: &ModelTag, device: &DeviceKey) -> Result<(usize, usize)> {
    let src = open_raw(from)?;
    let st = storage(from);
    let persons = src.open_tree("persons").map_err(&st)?;
    let templates = src.open_tree("templates").map_err(&st)?;
    let outbox = src.open_tree("outbox").map_err(&st)?;
    let meta = src.open_tree("meta").map_err(&st)?;
    if let Some(b) = meta.get("model").map_err(&st)? {
        let found: ModelTag = serde_json::from_slice(&b)
            .map_err(|e| GalleryError::Corrupt(format!("model record: {e}")))?;
        if &found != model {
            return Err(GalleryError::ModelMismatch {
                path: from.display().to_string(),
                found: found.name,
                found_dim: found.dim,
                expected: model.name.clone(),
                expected_dim: model.dim,
            });
        }
    }
    let dst = Cache::open_sealed(to, model, device)?;
    let mut n_persons = 0;
    let mut group = Vec::with_capacity(BATCH);
    for kv in persons.iter() {
        let (_, v) = kv.map_err(&st)?;
        group.push(Person::from_json(&v)?);
        if group.len() == BATCH {
            n_persons += group.len();
            dst.put_persons(&group)?;
            group.clear();
        }
    }
    n_persons += group.len();
    dst.put_persons(&group)?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut n_templates = 0;
    for kv in templates.iter() {
        let (k, v) = kv.map_err(&st)?;
        let id = u64::from_be_bytes(
            k.as_ref()
                .try_into()
                .map_err(|_| GalleryError::Corrupt("template key".into()))?,
        );
        batch.push(Template::decode(id, &v)?);
        if batch.len() == BATCH {
            n_templates += batch.len();
            dst.put_templates(&batch, None)?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        n_templates += batch.len();
        dst.put_templates(&batch, None)?;
    }
    // In order; new sequence numbers, same order.
    for kv in outbox.iter() {
        let (_, v) = kv.map_err(&st)?;
        dst.outbox_push(&Op::decode(&v)?)?;
    }
    for k in [META_WATERMARK, META_LAST_SYNC] {
        let v = meta
            .get(k)
            .map_err(&st)?
            .and_then(|b| b.as_ref().try_into().ok().map(i64::from_be_bytes));
        if let Some(v) = v {
            dst.set_meta_i64(k, v)?;
        }
    }
    dst.set_meta_i64(META_COMPLETE, 1)?;
    Ok((n_persons, n_templates))
}
