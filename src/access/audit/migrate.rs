//! Conversion of a plaintext audit log (written before sealing: no format record, events as
//! JSON, face crops as JPEG) into a sealed, chained one, on the first open with a device key.
//!
//! As for the gallery ([`crate::gallery::migrate`]): the sealed copy is written beside the log
//! (`<dir>.migrating`, events in their append order with their ids and times), marked
//! complete, and swapped in by two renames; the original is untouched until then, so an
//! interrupted conversion starts again or finishes its swap on the next open.

use std::path::{Path, PathBuf};

use super::{AuditError, AuditLog, Event, FORMAT, Result};
use crate::crypto::DeviceKey;

const META_COMPLETE: &str = "migration_complete";

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn storage(path: &Path) -> impl Fn(sled::Error) -> AuditError + '_ {
    move |source| AuditError::Storage {
        path: path.display().to_string(),
        source,
    }
}

fn io(path: &Path, e: std::io::Error) -> AuditError {
    storage(path)(sled::Error::Io(e))
}

fn open_raw(path: &Path) -> Result<sled::Db> {
    crate::gallery::sled_db::open(path, sled::Mode::LowSpace).map_err(storage(path))
}

fn meta_has(path: &Path, key: &str) -> Result<Option<bool>> {
    if !path.join("db").is_file() {
        return Ok(None);
    }
    let db = open_raw(path)?;
    let meta = db.open_tree("meta").map_err(storage(path))?;
    let events = db.open_tree("events").map_err(storage(path))?;
    if key == "plaintext" {
        let format = meta.get("format").map_err(storage(path))?;
        return Ok(Some(format.is_none() && !events.is_empty()));
    }
    Ok(Some(meta.contains_key(key).map_err(storage(path))?))
}

/// Whether the log at `path` holds plaintext events.
pub fn is_plaintext(path: &Path) -> Result<bool> {
    Ok(meta_has(path, "plaintext")?.unwrap_or(false))
}

/// Finish an interrupted conversion, or convert a plaintext log at `path`.
pub fn prepare(path: &Path, device: &DeviceKey) -> Result<()> {
    let tmp = sibling(path, ".migrating");
    let old = sibling(path, ".plaintext");
    if !path.exists() {
        if tmp.exists() && meta_has(&tmp, META_COMPLETE)? == Some(true) {
            std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        } else if old.exists() {
            std::fs::rename(&old, path).map_err(|e| io(path, e))?;
        }
        crate::crypto::fsmode::sync_parent(path);
    }
    if old.exists() && path.exists() && !is_plaintext(path)? {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    if !is_plaintext(path)? {
        return Ok(());
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    let started = std::time::Instant::now();
    let n = copy(path, &tmp, device)?;
    std::fs::rename(path, &old).map_err(|e| io(path, e))?;
    crate::crypto::fsmode::sync_parent(path);
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    crate::crypto::fsmode::sync_parent(path);
    std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    tracing::info!(
        path = %path.display(),
        events = n,
        ms = started.elapsed().as_millis() as u64,
        "plaintext audit log converted to sealed, chained records"
    );
    Ok(())
}

fn copy(from: &Path, to: &Path, device: &DeviceKey) -> Result<usize> {
    let src = open_raw(from)?;
    let st = storage(from);
    let events = src.open_tree("events").map_err(&st)?;
    let crops = src.open_tree("face_crops").map_err(&st)?;
    // Append order: by id.
    let mut all: Vec<Event> = Vec::with_capacity(events.len());
    for kv in events.iter() {
        let (_, v) = kv.map_err(&st)?;
        let e: Event = serde_json::from_slice(&v)
            .map_err(|e| AuditError::Corrupt(format!("event record: {e}")))?;
        all.push(e);
    }
    all.sort_by_key(|e| e.id);
    let dst = AuditLog::open_sealed(to, usize::MAX, device)?;
    for e in &all {
        let crop = crops.get(e.id.to_be_bytes()).map_err(&st)?;
        dst.import(e, crop.as_deref())?;
    }
    let db = open_raw_of(&dst);
    db.insert(META_COMPLETE, &[1u8][..]).map_err(storage(to))?;
    dst.flush()?;
    debug_assert!(FORMAT.starts_with("facegate-audit"));
    Ok(all.len())
}

fn open_raw_of(log: &AuditLog) -> sled::Tree {
    log.meta_tree()
}
