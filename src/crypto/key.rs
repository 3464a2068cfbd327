//! The device key: 32 random bytes that wrap every data key of this door's databases.
//!
//! It comes from, in order: `gallery.key_file` when set; the systemd credential
//! `facegate-device-key` (`$CREDENTIALS_DIRECTORY/facegate-device-key`, given by
//! `LoadCredentialEncrypted=`, which can bind it to the TPM); else [`DEFAULT_KEY_FILE`] when
//! /etc/facegate exists, else [`LOCAL_KEY_FILE`] in the working folder (beside the default
//! ./facegate-data of a checkout). The file holds the key as 64 hex digits (a credential may
//! also hold the 32 raw bytes).

use std::io::Write;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{CryptoError, Result, io};

/// Where `facegate init` writes the device key (outside the data directory /var/lib/facegate).
pub const DEFAULT_KEY_FILE: &str = "/etc/facegate/device.key";
/// The key of a checkout without /etc/facegate (beside ./facegate-data, not in it).
pub const LOCAL_KEY_FILE: &str = "facegate-device.key";
/// The systemd credential's name.
pub const CREDENTIAL: &str = "facegate-device-key";

/// Where the device key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    File(PathBuf),
    Credential(PathBuf),
}

impl KeySource {
    /// The source for a configured `key_file` (empty: the credential when systemd passed one,
    /// else [`DEFAULT_KEY_FILE`]).
    pub fn resolve(key_file: &Path) -> KeySource {
        if !key_file.as_os_str().is_empty() {
            return KeySource::File(key_file.to_owned());
        }
        if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            let p = PathBuf::from(dir).join(CREDENTIAL);
            if p.exists() {
                return KeySource::Credential(p);
            }
        }
        if Path::new(DEFAULT_KEY_FILE)
            .parent()
            .is_some_and(|d| d.is_dir())
        {
            KeySource::File(PathBuf::from(DEFAULT_KEY_FILE))
        } else {
            KeySource::File(PathBuf::from(LOCAL_KEY_FILE))
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            KeySource::File(p) | KeySource::Credential(p) => p,
        }
    }
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "{}", p.display()),
            KeySource::Credential(p) => write!(f, "systemd credential {}", p.display()),
        }
    }
}

/// The device key. Wiped from memory when dropped; never printed.
#[derive(Clone)]
pub struct DeviceKey {
    bytes: Zeroizing<[u8; 32]>,
    origin: String,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", self.origin)
    }
}

fn parse(raw: &[u8], path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let bad = |reason: &str| CryptoError::BadKey {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let mut key = Zeroizing::new([0u8; 32]);
    if raw.len() == 32 {
        key.copy_from_slice(raw);
        return Ok(key);
    }
    let text = std::str::from_utf8(raw).map_err(|_| bad("not 32 bytes nor 64 hex digits"))?;
    let hex = text.trim();
    if hex.len() != 64 {
        return Err(bad("expected 64 hex digits (32 bytes)"));
    }
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| bad("expected 64 hex digits (32 bytes)"))?;
    }
    if key.iter().all(|&b| b == 0) {
        return Err(bad("the key is all zeros"));
    }
    Ok(key)
}

impl DeviceKey {
    /// Read the key from `source`. A missing key is [`CryptoError::NoKey`]; a file that others
    /// may read is refused.
    pub fn load(source: &KeySource) -> Result<DeviceKey> {
        let path = source.path();
        let raw = match std::fs::read(path) {
            Ok(raw) => Zeroizing::new(raw),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CryptoError::NoKey(format!("{source} does not exist")));
            }
            Err(e) => return Err(io(path, e)),
        };
        #[cfg(unix)]
        if let KeySource::File(_) = source {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| io(path, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(CryptoError::BadKey {
                    path: path.display().to_string(),
                    reason: format!(
                        "mode {:o}: others may read it; chmod 600 it (and check who read it)",
                        mode & 0o777
                    ),
                });
            }
        }
        Ok(DeviceKey {
            bytes: parse(&raw, path)?,
            origin: source.to_string(),
        })
    }

    /// Make a new random key and write it to `path` (mode 0600, its folder 0700 when created).
    /// An existing file is never replaced.
    pub fn create(path: &Path) -> Result<DeviceKey> {
        let key = DeviceKey::generate()?;
        key.write_new(path)?;
        Ok(DeviceKey {
            origin: path.display().to_string(),
            ..key
        })
    }

    /// A new random key, in memory only.
    pub fn generate() -> Result<DeviceKey> {
        Ok(DeviceKey {
            bytes: Zeroizing::new(super::random::<32>()?),
            origin: "generated".into(),
        })
    }

    /// Write this key to a new file `path` (0600), synced to disk.
    pub fn write_new(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            super::fsmode::create_dir_all(dir)?;
        }
        let mut file = super::fsmode::create_new_file(path)?;
        // No temporary strings: every copy of the key is in a buffer wiped on drop.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut hex = Zeroizing::new(Vec::with_capacity(65));
        for b in self.bytes.iter() {
            hex.push(HEX[usize::from(b >> 4)]);
            hex.push(HEX[usize::from(b & 15)]);
        }
        hex.push(b'\n');
        file.write_all(&hex).map_err(|e| io(path, e))?;
        file.sync_all().map_err(|e| io(path, e))?;
        super::fsmode::sync_parent(path);
        Ok(())
    }

    /// Where the key came from (for messages; never the key itself).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A 32-byte key for one purpose, derived with HKDF-SHA256.
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"facegate device key v1"), self.bytes.as_ref());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's limit of 8160: expand cannot fail.
        if hk.expand(purpose.as_bytes(), out.as_mut()).is_err() {
            unreachable!("HKDF output of 32 bytes");
        }
        out
    }

    /// A value that identifies this key without revealing it (stored in each key-slot file, so
    /// that a wrong key is named at start instead of failing record by record).
    pub fn check_value(&self) -> [u8; 32] {
        let check = self.derive("key check");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(check.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"facegate key check v1");
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_load_back_and_bad_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("facegate-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("etc/device.key");
        let k = DeviceKey::create(&path).unwrap();
        let back = DeviceKey::load(&KeySource::File(path.clone())).unwrap();
        assert_eq!(k.check_value(), back.check_value());
        assert!(DeviceKey::create(&path).is_err(), "never replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = DeviceKey::load(&KeySource::File(path.clone())).unwrap_err();
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        let missing = DeviceKey::load(&KeySource::File(dir.join("nope"))).unwrap_err();
        assert!(matches!(missing, CryptoError::NoKey(_)), "{missing}");
        assert!(parse(b"abc", &path).is_err());
        assert!(parse(&[0u8; 64], &path).is_err());
        assert_ne!(
            DeviceKey::generate().unwrap().check_value(),
            k.check_value()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
