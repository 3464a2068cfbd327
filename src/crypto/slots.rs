//! A database's key slots: one file of fixed-size slots, each holding one data key wrapped
//! (sealed) by a key derived from the device key.
//!
//! Slot 0 holds the database's own key (for records that belong to no one person); the others
//! are given out one per person or per face crop. Destroying a slot overwrites it with zeros
//! in place and syncs the file: the data sealed under that key can no longer be opened, even
//! from the stale copies sled keeps in its log until it reuses the space. (On flash, the
//! storage's own wear levelling may keep an old physical copy of the 4 KiB block; the slot file
//! is small and rewritten in place, which is what an application can do.)
//!
//! Layout: a 64-byte header (`FGSLOTS1`, the device key's check value), then slots of
//! [`SLOT`] bytes: `1 | 3 zero bytes | sealed key`, or all zeros when free.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use zeroize::Zeroizing;

use super::seal::{DataKey, OVERHEAD};
use super::{CryptoError, DeviceKey, Result, io};

const MAGIC: &[u8; 8] = b"FGSLOTS1";
const HEADER: u64 = 64;
/// Bytes per slot.
pub const SLOT: usize = 80;
const USED: u8 = 1;
/// The slot of the database's own key.
pub const STORE_SLOT: u32 = 0;

struct Inner {
    file: File,
    used: BTreeSet<u32>,
    /// Slots in the file (used or free).
    len: u32,
}

pub struct KeySlots {
    path: PathBuf,
    wrap: DataKey,
    inner: Mutex<Inner>,
}

fn aad(index: u32) -> [u8; 17] {
    let mut a = [0u8; 17];
    a[..13].copy_from_slice(b"facegate slot");
    a[13..].copy_from_slice(&index.to_le_bytes());
    a
}

fn offset(index: u32) -> u64 {
    HEADER + u64::from(index) * SLOT as u64
}

fn wrap_key(device: &DeviceKey) -> DataKey {
    DataKey::from_bytes(device.derive("key slots"))
}

impl KeySlots {
    /// Open the slot file at `path`, creating it (with a new database key in slot 0) when
    /// absent. A file made with another device key is [`CryptoError::WrongKey`].
    pub fn open(path: &Path, device: &DeviceKey) -> Result<KeySlots> {
        let fresh = !path.exists();
        let file = super::fsmode::open_rw(path)?;
        let size = file.metadata().map_err(|e| io(path, e))?.len();
        let slots = KeySlots {
            path: path.to_owned(),
            wrap: wrap_key(device),
            inner: Mutex::new(Inner {
                file,
                used: BTreeSet::new(),
                len: 0,
            }),
        };
        if fresh || size == 0 {
            let mut header = [0u8; HEADER as usize];
            header[..8].copy_from_slice(MAGIC);
            header[8..40].copy_from_slice(&device.check_value());
            {
                let inner = slots.lock();
                inner
                    .file
                    .write_all_at(&header, 0)
                    .map_err(|e| io(path, e))?;
            }
            slots.write_slot(STORE_SLOT, &DataKey::generate()?)?;
            super::fsmode::sync_parent(path);
            return Ok(slots);
        }
        let bad = |reason: String| CryptoError::Slots {
            path: path.display().to_string(),
            reason,
        };
        let mut inner = slots.lock();
        let mut header = [0u8; HEADER as usize];
        inner
            .file
            .read_exact_at(&mut header, 0)
            .map_err(|_| bad(format!("{size} bytes, shorter than its header")))?;
        if &header[..8] != MAGIC {
            return Err(bad("not a facegate key-slot file".into()));
        }
        if header[8..40] != device.check_value() {
            return Err(CryptoError::WrongKey {
                path: path.display().to_string(),
                key: device.origin().to_owned(),
            });
        }
        let body = size.saturating_sub(HEADER);
        let len = (body / SLOT as u64) as u32;
        let mut buf = vec![0u8; len as usize * SLOT];
        inner
            .file
            .read_exact_at(&mut buf, HEADER)
            .map_err(|e| io(path, e))?;
        for (i, s) in buf.chunks_exact(SLOT).enumerate() {
            if s[0] == USED {
                inner.used.insert(i as u32);
            }
        }
        inner.len = len;
        if !inner.used.contains(&STORE_SLOT) {
            return Err(bad("the database key (slot 0) is missing".into()));
        }
        drop(inner);
        Ok(slots)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_slot(&self, index: u32, key: &DataKey) -> Result<()> {
        self.write_slot_sync(index, key, true)
    }

    fn write_slot_sync(&self, index: u32, key: &DataKey, sync: bool) -> Result<()> {
        let sealed = self.wrap.seal(&aad(index), key.bytes())?;
        debug_assert_eq!(sealed.len(), 32 + OVERHEAD);
        let mut slot = Zeroizing::new([0u8; SLOT]);
        slot[0] = USED;
        slot[4..4 + sealed.len()].copy_from_slice(&sealed);
        let mut inner = self.lock();
        inner
            .file
            .write_all_at(slot.as_ref(), offset(index))
            .map_err(|e| io(&self.path, e))?;
        if sync {
            inner.file.sync_data().map_err(|e| io(&self.path, e))?;
        }
        inner.used.insert(index);
        inner.len = inner.len.max(index + 1);
        Ok(())
    }

    /// The database's own key (slot 0).
    pub fn store_key(&self) -> Result<DataKey> {
        self.key(STORE_SLOT)
    }

    /// The lowest free data slot, reserved now so that a concurrent create takes another.
    fn reserve(&self) -> u32 {
        let mut inner = self.lock();
        let index = (1..inner.len)
            .find(|i| !inner.used.contains(i))
            .unwrap_or(inner.len.max(1));
        inner.used.insert(index);
        inner.len = inner.len.max(index + 1);
        index
    }

    /// A new data key in a free slot, written and synced before this returns.
    pub fn create(&self) -> Result<(u32, DataKey)> {
        let key = DataKey::generate()?;
        let index = self.reserve();
        if let Err(e) = self.write_slot(index, &key) {
            self.lock().used.remove(&index);
            return Err(e);
        }
        Ok((index, key))
    }

    /// `n` new data keys, written with one sync at the end (bulk writes).
    pub fn create_many(&self, n: usize) -> Result<Vec<(u32, DataKey)>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = DataKey::generate()?;
            let index = self.reserve();
            if let Err(e) = self.write_slot_sync(index, &key, false) {
                let mut inner = self.lock();
                inner.used.remove(&index);
                for (i, _) in &out {
                    inner.used.remove(i);
                }
                return Err(e);
            }
            out.push((index, key));
        }
        self.lock()
            .file
            .sync_data()
            .map_err(|e| io(&self.path, e))?;
        Ok(out)
    }

    /// The data key in slot `index`.
    pub fn key(&self, index: u32) -> Result<DataKey> {
        let mut slot = Zeroizing::new([0u8; SLOT]);
        {
            let inner = self.lock();
            if !inner.used.contains(&index) {
                return Err(CryptoError::Open(format!(
                    "key slot {index} is empty (destroyed)"
                )));
            }
            inner
                .file
                .read_exact_at(slot.as_mut(), offset(index))
                .map_err(|e| io(&self.path, e))?;
        }
        let plain = Zeroizing::new(self.wrap.open(
            &aad(index),
            &slot[4..4 + 32 + OVERHEAD],
            &format!("key slot {index}"),
        )?);
        let mut k = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(CryptoError::Open(format!("key slot {index}: bad length")));
        }
        k.copy_from_slice(&plain);
        Ok(DataKey::from_bytes(k))
    }

    /// Overwrite slot `index` with zeros and sync: its key is gone for good.
    pub fn destroy(&self, index: u32) -> Result<()> {
        if index == STORE_SLOT {
            return Err(CryptoError::Slots {
                path: self.path.display().to_string(),
                reason: "the database key (slot 0) is never destroyed".into(),
            });
        }
        let mut inner = self.lock();
        if index >= inner.len {
            return Ok(());
        }
        inner
            .file
            .write_all_at(&[0u8; SLOT], offset(index))
            .map_err(|e| io(&self.path, e))?;
        inner.file.sync_data().map_err(|e| io(&self.path, e))?;
        inner.used.remove(&index);
        Ok(())
    }

    /// Slots in use, slot 0 excluded.
    pub fn used(&self) -> Vec<u32> {
        self.lock()
            .used
            .iter()
            .copied()
            .filter(|&i| i != STORE_SLOT)
            .collect()
    }

    /// Destroy every used slot (but slot 0) not in `referenced`: keys made for a write that a
    /// crash interrupted before it was stored. Returns how many.
    pub fn destroy_unreferenced(&self, referenced: &BTreeSet<u32>) -> Result<usize> {
        let orphans: Vec<u32> = self
            .used()
            .into_iter()
            .filter(|i| !referenced.contains(i))
            .collect();
        for &i in &orphans {
            self.destroy(i)?;
        }
        Ok(orphans.len())
    }

    /// Write the slot file at `path` again under `new` (a device key rotation): every key is
    /// unwrapped with `old` and wrapped with `new` into `path` + ".new", synced, then renamed
    /// over `path` (atomic: the file is under one key or the other, never a mix).
    pub fn rewrap(path: &Path, old: &DeviceKey, new: &DeviceKey) -> Result<()> {
        let from = KeySlots::open(path, old)?;
        let tmp = path.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        let to = KeySlots {
            path: tmp.clone(),
            wrap: wrap_key(new),
            inner: Mutex::new(Inner {
                file: super::fsmode::create_new_file(&tmp)?,
                used: BTreeSet::new(),
                len: 0,
            }),
        };
        let mut header = [0u8; HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..40].copy_from_slice(&new.check_value());
        to.lock()
            .file
            .write_all_at(&header, 0)
            .map_err(|e| io(&tmp, e))?;
        let len = from.lock().len;
        let used: BTreeSet<u32> = from.lock().used.clone();
        for i in 0..len {
            if used.contains(&i) {
                to.write_slot(i, &from.key(i)?)?;
            } else {
                to.lock()
                    .file
                    .write_all_at(&[0u8; SLOT], offset(i))
                    .map_err(|e| io(&tmp, e))?;
            }
        }
        to.lock().file.sync_all().map_err(|e| io(&tmp, e))?;
        drop(to);
        drop(from);
        std::fs::rename(&tmp, path).map_err(|e| io(path, e))?;
        super::fsmode::sync_parent(path);
        Ok(())
    }

    /// Whether the slot file at `path` was made with `device` (`None`: no such file).
    pub fn made_with(path: &Path, device: &DeviceKey) -> Result<Option<bool>> {
        match std::fs::read(path) {
            Ok(b) => Ok(Some(
                b.len() >= 40 && &b[..8] == MAGIC && b[8..40] == device.check_value(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_created_reopened_destroyed_and_rewrapped() {
        let dir = std::env::temp_dir().join(format!("facegate-slots-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keyslots");
        let dk = DeviceKey::generate().unwrap();
        let s = KeySlots::open(&path, &dk).unwrap();
        let store = s.store_key().unwrap();
        let (a, ka) = s.create().unwrap();
        let (b, kb) = s.create().unwrap();
        assert_eq!((a, b), (1, 2));
        let sealed = ka.seal(b"x", b"secret").unwrap();
        s.destroy(a).unwrap();
        assert!(s.key(a).is_err());
        assert!(s.destroy(STORE_SLOT).is_err());
        let (c, _) = s.create().unwrap();
        assert_eq!(c, 1, "a freed slot is reused");
        drop(s);
        // Reopened: the keys are the same; a wrong device key is named.
        let s = KeySlots::open(&path, &dk).unwrap();
        assert_eq!(s.store_key().unwrap().bytes(), store.bytes());
        assert_eq!(s.key(b).unwrap().bytes(), kb.bytes());
        assert!(s.key(1).unwrap().open(b"x", &sealed, "r").is_err());
        drop(s);
        let other = DeviceKey::generate().unwrap();
        assert!(matches!(
            KeySlots::open(&path, &other),
            Err(CryptoError::WrongKey { .. })
        ));
        // The zeroed slot holds nothing of the old key.
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(raw.len(), HEADER as usize + 3 * SLOT);
        // Rotation: the same data keys under the new device key.
        KeySlots::rewrap(&path, &dk, &other).unwrap();
        assert!(KeySlots::open(&path, &dk).is_err());
        let s = KeySlots::open(&path, &other).unwrap();
        assert_eq!(s.key(b).unwrap().bytes(), kb.bytes());
        assert_eq!(s.used(), vec![1, 2]);
        assert_eq!(s.destroy_unreferenced(&[2].into()).unwrap(), 1);
        assert_eq!(s.used(), vec![2]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
