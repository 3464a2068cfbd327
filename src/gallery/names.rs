//! Reading a few persons' names from a gallery folder without opening it as a gallery (for
//! listings such as `facegate events`).

use std::collections::HashMap;
use std::path::Path;

use super::cache::{FORMAT_PLAIN, META_FORMAT};
use super::record::Person;
use super::sealed::PersonKeys;
use super::{GalleryError, Result};
use crate::crypto::DeviceKey;

/// The names of some persons, read from the gallery at `path` without loading its templates
/// or checking its model (for listings such as `facegate events`); `device` opens their
/// sealed records. `Ok(None)` when there is no gallery there; an error like [`Cache::open`]'s
/// when another process holds it.
pub fn read_person_names(
    path: &Path,
    ids: &[&str],
    device: &DeviceKey,
) -> Result<Option<HashMap<String, String>>> {
    if !path.join("db").is_file() && !path.join("conf").is_file() {
        return Ok(None);
    }
    let storage = |source| GalleryError::Storage {
        path: path.display().to_string(),
        source,
    };
    let db = super::sled_db::open(path, sled::Mode::LowSpace).map_err(storage)?;
    let persons = db.open_tree("persons").map_err(storage)?;
    let meta = db.open_tree("meta").map_err(storage)?;
    let plain = meta
        .get(META_FORMAT)
        .map_err(storage)?
        .is_none_or(|f| f.as_ref() == FORMAT_PLAIN.as_bytes());
    let keys = if plain {
        None
    } else {
        Some(PersonKeys::open(path, device, false)?)
    };
    let mut names = HashMap::new();
    for id in ids {
        if let Some(b) = persons.get(id).map_err(storage)? {
            let person = match &keys {
                None => Person::from_json(&b)?,
                Some(keys) => {
                    keys.load(id, &b)?;
                    keys.open_person(id, &b)?
                }
            };
            names.insert((*id).to_owned(), person.name);
        }
    }
    Ok(Some(names))
}
