//! Sealed records: XChaCha20-Poly1305 with a random 24-byte nonce per record (random nonces
//! of that size never repeat in practice, whatever the number of records or restarts).
//!
//! A sealed record is `0xF5 | nonce (24) | ciphertext | tag (16)`. The associated data names
//! what the record is (its tree and key), so a record moved to another place does not open.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::{CryptoError, Result};

/// First byte of every sealed record (JSON starts with `{`, facegate's plaintext templates
/// with a small length: neither is 0xF5).
pub const SEALED: u8 = 0xF5;
const NONCE: usize = 24;
/// Bytes a sealed record adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE + 16;

/// A 256-bit data key. Wiped from memory when dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn from_bytes(b: Zeroizing<[u8; 32]>) -> DataKey {
        DataKey(b)
    }

    /// A new random key.
    pub fn generate() -> Result<DataKey> {
        Ok(DataKey(Zeroizing::new(super::random::<32>()?)))
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    /// Seal `plain`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = super::random::<NONCE>()?;
        let ct = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| CryptoError::Open("seal".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE + ct.len());
        out.push(SEALED);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Open a record sealed with this key and `aad`; `what` names it in the error.
    pub fn open(&self, aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        if sealed.len() < OVERHEAD || sealed[0] != SEALED {
            return Err(CryptoError::Open(format!("{what}: not a sealed record")));
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE]);
        self.cipher()
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE..],
                    aad,
                },
            )
            .map_err(|_| CryptoError::Open(what.to_owned()))
    }
}

/// Whether `b` looks like a sealed record (its first byte).
pub fn is_sealed(b: &[u8]) -> bool {
    b.first() == Some(&SEALED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_tampering_or_another_place() {
        let k = DataKey::generate().unwrap();
        let s = k.seal(b"person\0a", b"Alice").unwrap();
        assert_eq!(s.len(), 5 + OVERHEAD);
        assert!(is_sealed(&s));
        assert!(!s.windows(5).any(|w| w == b"Alice"));
        assert_eq!(k.open(b"person\0a", &s, "p").unwrap(), b"Alice");
        assert!(k.open(b"person\0b", &s, "p").is_err(), "other aad");
        let mut bad = s.clone();
        bad[30] ^= 1;
        assert!(k.open(b"person\0a", &bad, "p").is_err(), "tampered");
        let other = DataKey::generate().unwrap();
        assert!(other.open(b"person\0a", &s, "p").is_err(), "other key");
        assert_ne!(
            k.seal(b"x", b"same").unwrap(),
            k.seal(b"x", b"same").unwrap()
        );
    }
}
