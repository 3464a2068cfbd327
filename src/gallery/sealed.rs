//! The gallery's records as stored: every person, template and outbox entry sealed under the
//! data key of its person (see [`crate::crypto`]); ids stay in clear (they are sled keys, and
//! Milvus primary keys).
//!
//! - person: `slot (u32 LE) | sealed(person JSON)`
//! - template: `u16 len | person id | sealed(Template::encode())`
//! - outbox entry: `u16 len | person id | sealed(op JSON)`, with len 0 for an entry that
//!   belongs to no person (deletions: ids only), sealed under the gallery's own key.
//!
//! Person keys live in the gallery's key-slot file, one slot each, destroyed with the person.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::RwLock;

use crate::crypto::{DataKey, DeviceKey, KeySlots};

use super::outbox::Op;
use super::record::{Person, Template};
use super::{GalleryError, Result};

/// File name of the gallery's key slots, inside its folder.
pub const SLOTS_FILE: &str = "keyslots";

fn aad(kind: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut a = Vec::with_capacity(64);
    a.extend_from_slice(b"facegate ");
    a.extend_from_slice(kind.as_bytes());
    for p in parts {
        a.push(0);
        a.extend_from_slice(p);
    }
    a
}

fn corrupt(what: String) -> GalleryError {
    GalleryError::Corrupt(what)
}

/// Split `u16 len | id | rest`.
fn split_owner(b: &[u8]) -> Option<(&str, &[u8])> {
    let n = u16::from_le_bytes(b.get(..2)?.try_into().ok()?) as usize;
    let id = std::str::from_utf8(b.get(2..2 + n)?).ok()?;
    Some((id, &b[2 + n..]))
}

fn with_owner(owner: &str, sealed: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + owner.len() + sealed.len());
    out.extend_from_slice(&(owner.len() as u16).to_le_bytes());
    out.extend_from_slice(owner.as_bytes());
    out.extend(sealed);
    out
}

/// The data keys of a gallery: its own key and one per person.
pub struct PersonKeys {
    slots: KeySlots,
    store: DataKey,
    map: RwLock<HashMap<String, (u32, DataKey)>>,
}

impl PersonKeys {
    /// Open the key slots of the gallery at `dir`. `create`: make the file when absent (a new
    /// gallery); otherwise its absence is an error (the gallery could not be decrypted).
    pub fn open(dir: &Path, device: &DeviceKey, create: bool) -> Result<PersonKeys> {
        let path = dir.join(SLOTS_FILE);
        if !create && !path.exists() {
            return Err(GalleryError::Corrupt(format!(
                "{} is missing: the gallery's keys are gone and its records cannot be \
                 decrypted (restore the folder from a backup made with it)",
                path.display()
            )));
        }
        let slots = KeySlots::open(&path, device)?;
        let store = slots.store_key()?;
        Ok(PersonKeys {
            slots,
            store,
            map: RwLock::new(HashMap::new()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (u32, DataKey)>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (u32, DataKey)>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Load a stored person's key (at open) from its record.
    pub fn load(&self, id: &str, record: &[u8]) -> Result<()> {
        let slot = person_slot(id, record)?;
        let key = self.slots.key(slot).map_err(|e| {
            corrupt(format!(
                "person {id:?}: {e} (the record survived its key: restore from a backup)"
            ))
        })?;
        self.write().insert(id.to_owned(), (slot, key));
        Ok(())
    }

    /// The person's key and slot, `None` when the person has none.
    pub fn get(&self, id: &str) -> Option<(u32, DataKey)> {
        self.read().get(id).cloned()
    }

    /// The person's key, made (and its slot written and synced) when they have none yet.
    /// Returns whether it was created.
    pub fn get_or_create(&self, id: &str) -> Result<(u32, DataKey, bool)> {
        if let Some((s, k)) = self.get(id) {
            return Ok((s, k, false));
        }
        let mut map = self.write();
        if let Some((s, k)) = map.get(id) {
            return Ok((*s, k.clone(), false));
        }
        let (slot, key) = self.slots.create()?;
        map.insert(id.to_owned(), (slot, key.clone()));
        Ok((slot, key, true))
    }

    /// Keys for many persons at once (one sync of the slot file); returns the ids whose key
    /// was created here.
    pub fn get_or_create_many(&self, ids: &[&str]) -> Result<Vec<String>> {
        let mut map = self.write();
        let mut missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !map.contains_key(*id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let made = self.slots.create_many(missing.len())?;
        for (id, (slot, key)) in missing.iter().zip(made) {
            map.insert((*id).to_owned(), (slot, key));
        }
        Ok(missing.into_iter().map(str::to_owned).collect())
    }

    /// Destroy the person's key (crypto-shredding): after this, nothing sealed under it opens.
    pub fn destroy(&self, id: &str) -> Result<()> {
        let entry = self.write().remove(id);
        if let Some((slot, _)) = entry {
            self.slots.destroy(slot)?;
        }
        Ok(())
    }

    /// Destroy the slots no loaded person uses (keys of an interrupted creation).
    pub fn destroy_orphans(&self) -> Result<usize> {
        let used: BTreeSet<u32> = self.read().values().map(|(s, _)| *s).collect();
        Ok(self.slots.destroy_unreferenced(&used)?)
    }

    /// A new key in a new slot (written and synced), not yet anyone's: [`PersonKeys::replace`]
    /// gives it to a person once their records are sealed under it, [`PersonKeys::discard`]
    /// destroys it when they could not be (a crash in between leaves an orphan slot,
    /// destroyed at the next open).
    pub fn fresh(&self) -> Result<(u32, DataKey)> {
        Ok(self.slots.create()?)
    }

    /// Destroy a key from [`PersonKeys::fresh`] that was not used.
    pub fn discard(&self, slot: u32) -> Result<()> {
        Ok(self.slots.destroy(slot)?)
    }

    /// Give the person the key in `slot` (their records are now sealed under it) and destroy
    /// their previous key: what was sealed under it can no longer be opened.
    pub fn replace(&self, id: &str, slot: u32, key: DataKey) -> Result<()> {
        let previous = self.write().insert(id.to_owned(), (slot, key));
        match previous {
            Some((old, _)) if old != slot => self.slots.destroy(old)?,
            _ => {}
        }
        Ok(())
    }

    pub fn store(&self) -> &DataKey {
        &self.store
    }

    fn key_of(&self, person: &str) -> Result<DataKey> {
        self.get(person)
            .map(|(_, k)| k)
            .ok_or_else(|| GalleryError::UnknownPerson(person.to_owned()))
    }

    pub fn seal_person(&self, p: &Person) -> Result<Vec<u8>> {
        let (slot, key) = self
            .get(&p.id)
            .ok_or_else(|| GalleryError::UnknownPerson(p.id.clone()))?;
        seal_person_with(p, slot, &key)
    }

    pub fn open_person(&self, id: &str, b: &[u8]) -> Result<Person> {
        let key = self
            .key_of(id)
            .map_err(|_| corrupt(format!("person {id:?}: no key loaded")))?;
        let plain = key
            .open(
                &aad("person", &[id.as_bytes()]),
                b.get(4..).unwrap_or_default(),
                &format!("person {id:?}"),
            )
            .map_err(|e| corrupt(e.to_string()))?;
        Person::from_json(&plain)
    }

    pub fn seal_template(&self, t: &Template) -> Result<Vec<u8>> {
        seal_template_with(t, &self.key_of(&t.person)?)
    }

    pub fn open_template(&self, id: u64, b: &[u8]) -> Result<Template> {
        let (person, sealed) =
            split_owner(b).ok_or_else(|| corrupt(format!("template {id}: bad header")))?;
        let key = self.key_of(person).map_err(|_| {
            corrupt(format!(
                "template {id} of {person:?}: no key for its person"
            ))
        })?;
        let plain = key
            .open(
                &aad("template", &[&id.to_be_bytes(), person.as_bytes()]),
                sealed,
                &format!("template {id}"),
            )
            .map_err(|e| corrupt(e.to_string()))?;
        Template::decode(id, &plain)
    }

    /// An outbox entry: under its person's key when it carries their data, else the
    /// gallery's own key.
    pub fn seal_op(&self, op: &Op) -> Result<Vec<u8>> {
        let key = match op.creates_for() {
            None | Some("") => self.store.clone(),
            Some(owner) => self.key_of(owner)?,
        };
        seal_op_with(op, &key)
    }

    pub fn open_op(&self, seq: u64, b: &[u8]) -> Result<Op> {
        let (owner, sealed) =
            split_owner(b).ok_or_else(|| corrupt(format!("outbox entry {seq}: bad header")))?;
        let key = if owner.is_empty() {
            self.store.clone()
        } else {
            self.key_of(owner)
                .map_err(|_| corrupt(format!("outbox entry {seq}: no key for {owner:?}")))?
        };
        let plain = key
            .open(
                &aad("outbox", &[owner.as_bytes()]),
                sealed,
                &format!("outbox entry {seq}"),
            )
            .map_err(|e| corrupt(e.to_string()))?;
        Op::decode(&plain)
    }
}

/// A person record sealed under `key` (its slot number in clear in front).
pub fn seal_person_with(p: &Person, slot: u32, key: &DataKey) -> Result<Vec<u8>> {
    let sealed = key.seal(&aad("person", &[p.id.as_bytes()]), &p.to_json()?)?;
    let mut out = Vec::with_capacity(4 + sealed.len());
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend(sealed);
    Ok(out)
}

/// A template sealed under its person's `key` (the person id in clear in front).
pub fn seal_template_with(t: &Template, key: &DataKey) -> Result<Vec<u8>> {
    let sealed = key.seal(
        &aad("template", &[&t.id.to_be_bytes(), t.person.as_bytes()]),
        &t.encode(),
    )?;
    Ok(with_owner(&t.person, sealed))
}

/// An outbox entry sealed under `key`: its person's when it carries their data, else the
/// gallery's own key.
pub fn seal_op_with(op: &Op, key: &DataKey) -> Result<Vec<u8>> {
    let owner = op.creates_for().unwrap_or("");
    let sealed = key.seal(&aad("outbox", &[owner.as_bytes()]), &op.encode()?)?;
    Ok(with_owner(owner, sealed))
}

/// The key slot a person record names.
pub fn person_slot(id: &str, b: &[u8]) -> Result<u32> {
    b.get(..4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt(format!("person {id:?}: record of {} bytes", b.len())))
}

/// The person a stored template belongs to (from its clear header).
pub fn template_owner(b: &[u8]) -> Option<&str> {
    split_owner(b).map(|(p, _)| p)
}
