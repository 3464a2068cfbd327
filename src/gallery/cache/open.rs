//! Opening the device's gallery: the sled database (named holders when another process has
//! it), the model and format checks, and loading the matrix.

use std::path::Path;
use std::sync::RwLock;

use std::collections::HashMap;

use super::{Cache, FORMAT, Index, META_FORMAT, META_MODEL, key_id};
use crate::crypto::DeviceKey;
use crate::gallery::matrix::Matrix;
use crate::gallery::record::ModelTag;
use crate::gallery::sealed::PersonKeys;
use crate::gallery::{GalleryError, Result};

/// Open the sled database at `path`. sled locks it for one process: when another holds it
/// (a running door), the error says which process.
pub(crate) fn open_db(path: &Path) -> Result<sled::Db> {
    crate::gallery::sled_db::open(path, sled::Mode::HighThroughput).map_err(|source| {
        if crate::gallery::sled_db::is_lock_conflict(&source) {
            GalleryError::InUse {
                path: path.display().to_string(),
                holders: crate::host::describe_holders(&crate::host::holders(&path.join("db"))),
            }
        } else {
            GalleryError::Storage {
                path: path.display().to_string(),
                source,
            }
        }
    })
}

impl Cache {
    /// Open (or create) the gallery at `path` for `model`, its records sealed under keys
    /// wrapped by `device`. A gallery made with another model or another device key is
    /// refused; a plaintext gallery (made before sealing) is converted first
    /// ([`crate::gallery::migrate`]).
    pub fn open(path: &Path, model: &ModelTag, device: &DeviceKey) -> Result<Cache> {
        crate::gallery::migrate::prepare(path, model, device)?;
        Cache::open_sealed(path, model, device)
    }

    /// [`Cache::open`] without the conversion of a plaintext gallery (which is refused).
    pub fn open_sealed(path: &Path, model: &ModelTag, device: &DeviceKey) -> Result<Cache> {
        let storage = |source| GalleryError::Storage {
            path: path.display().to_string(),
            source,
        };
        crate::crypto::fsmode::private_umask();
        crate::crypto::fsmode::create_dir_all(path)?;
        let db = open_db(path)?;
        crate::crypto::fsmode::restrict_tree(path)?;
        let tree = |name: &str| db.open_tree(name).map_err(storage);
        let (persons, templates, outbox, meta) = (
            tree("persons")?,
            tree("templates")?,
            tree("outbox")?,
            tree("meta")?,
        );
        let format = meta.get(META_FORMAT).map_err(storage)?;
        let fresh = format.is_none() && persons.is_empty() && templates.is_empty();
        if let Some(f) = &format
            && f.as_ref() != FORMAT.as_bytes()
        {
            return Err(GalleryError::Corrupt(format!(
                "{}: format {:?}, this facegate reads {FORMAT} (plaintext galleries are \
                 converted by Cache::open)",
                path.display(),
                String::from_utf8_lossy(f)
            )));
        }
        let keys = PersonKeys::open(path, device, fresh)?;
        if format.is_none() {
            meta.insert(META_FORMAT, FORMAT).map_err(storage)?;
        }
        match meta.get(META_MODEL).map_err(storage)? {
            Some(b) => {
                let found: ModelTag = serde_json::from_slice(&b)
                    .map_err(|e| GalleryError::Corrupt(format!("model record: {e}")))?;
                if &found != model {
                    return Err(GalleryError::ModelMismatch {
                        path: path.display().to_string(),
                        found: found.name,
                        found_dim: found.dim,
                        expected: model.name.clone(),
                        expected_dim: model.dim,
                    });
                }
            }
            None => {
                let b = serde_json::to_vec(model)
                    .map_err(|e| GalleryError::Corrupt(format!("model record: {e}")))?;
                meta.insert(META_MODEL, b).map_err(storage)?;
                db.flush().map_err(storage)?;
            }
        }
        let mut index = Index {
            matrix: Matrix::new(model.dim),
            keys: HashMap::new(),
            names: Vec::new(),
            by_person: HashMap::new(),
        };
        for kv in persons.iter() {
            let (k, v) = kv.map_err(storage)?;
            keys.load(&String::from_utf8_lossy(&k), &v)?;
        }
        let orphans = keys.destroy_orphans()?;
        if orphans > 0 {
            tracing::info!(
                orphans,
                "keys of person writes interrupted before they were stored destroyed"
            );
        }
        for kv in templates.iter() {
            let (k, v) = kv.map_err(storage)?;
            let t = keys.open_template(key_id(&k)?, &v)?;
            if t.embedding.len() != model.dim {
                return Err(GalleryError::Corrupt(format!(
                    "template {} has {} values, the gallery's model {}",
                    t.id,
                    t.embedding.len(),
                    model.dim
                )));
            }
            index.insert(&t);
        }
        tracing::info!(
            path = %path.display(),
            templates = index.matrix.len(),
            persons = persons.len(),
            outbox = outbox.len(),
            "gallery cache open"
        );
        Ok(Cache {
            path: path.to_owned(),
            db,
            persons,
            templates,
            outbox,
            meta,
            model: model.clone(),
            index: RwLock::new(index),
            keys,
            sealing: parking_lot::RwLock::new(()),
        })
    }

    /// The model a gallery was made with, read without loading it; `None` when there is no
    /// gallery at `path` yet (nothing is created) or it records no model.
    pub fn recorded_model(path: &Path) -> Result<Option<ModelTag>> {
        if !path.join("db").exists() {
            return Ok(None);
        }
        let storage = |source| GalleryError::Storage {
            path: path.display().to_string(),
            source,
        };
        let db = open_db(path)?;
        let meta = db.open_tree("meta").map_err(storage)?;
        match meta.get(META_MODEL).map_err(storage)? {
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| GalleryError::Corrupt(format!("model record: {e}"))),
            None => Ok(None),
        }
    }
}
