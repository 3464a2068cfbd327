//! Protection of the device's biometric data at rest.
//!
//! - [`key`]: the device key (32 random bytes) from a file made by `facegate init` or from a
//!   systemd credential; it never lives in a data directory.
//! - [`seal`]: records sealed with XChaCha20-Poly1305 (RustCrypto `chacha20poly1305`), under
//!   data keys.
//! - [`slots`]: each database's key-slot file: data keys wrapped by the device key, one slot
//!   per person (gallery) or per face crop (audit log), overwritten with zeros when the
//!   person or crop is deleted (crypto-shredding: what sled leaves in its files can no longer
//!   be decrypted).
//! - [`fsmode`]: folders 0700 and files 0600, whatever the umask.
//!
//! Key material is held in [`zeroize::Zeroizing`] buffers, wiped when dropped.

pub mod fsmode;
pub mod key;
pub mod seal;
pub mod slots;

pub use key::{DeviceKey, KeySource};
pub use seal::DataKey;
pub use slots::KeySlots;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "no device key: {0}. Create one with `facegate init` (or `facegate key create`), or give \
         it as the systemd credential \"facegate-device-key\" (LoadCredentialEncrypted=)"
    )]
    NoKey(String),
    #[error("device key {path}: {reason}")]
    BadKey { path: String, reason: String },
    #[error(
        "the data at {path} was sealed with another device key than {key} (key check differs). \
         Nothing was changed: start with the device key it was made with"
    )]
    WrongKey { path: String, key: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key slots {path}: {reason}")]
    Slots { path: String, reason: String },
    #[error("a sealed record ({0}) does not open: damaged, or its key was destroyed")]
    Open(String),
    #[error("no randomness: {0}")]
    Random(String),
}

pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> CryptoError {
    CryptoError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `n` random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(b)
}
