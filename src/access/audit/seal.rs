//! The audit log's records at rest: personal fields sealed, every event chained to the one
//! appended before it by an HMAC, face crops sealed under one key each.
//!
//! An event record is `u32 len | public JSON | sealed private JSON | mac (32)`:
//! - public: id, time, action, outcome, source (what the log is filtered and ordered by);
//! - private (XChaCha20-Poly1305 under the log's own key): person, template, score, reason,
//!   face quality;
//! - mac = HMAC-SHA256(chain key, previous mac | event key | record without its mac).
//!
//! The chain runs in append order (event ids, the `chain` tree), not time order. The log's
//! chain state (events appended and trimmed, last id, the head mac, and the mac of the last
//! trimmed event, "anchor") is itself authenticated by the chain key. Without the device key,
//! an event cannot be altered, inserted, removed, or the log truncated at either end without
//! [`verify`](super::AuditLog::verify) naming the first broken link. (A whole older
//! copy of the log put back is not detected: nothing on the device remembers it was longer.)

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Action, AuditError, EventSource, FaceQuality, Outcome, Result};
use crate::crypto::DataKey;

pub type MacBytes = [u8; 32];

/// The fields of an event that say who and how, as stored (sealed). They mirror those of
/// [`super::Event`] on purpose: this is the on-disk format, which must keep reading old logs
/// when the API's event type grows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Private {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<FaceQuality>,
}

/// The fields of an event kept in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Public {
    pub id: u64,
    pub time_ms: i64,
    pub action: Action,
    pub outcome: Outcome,
    pub source: EventSource,
}

fn corrupt(s: String) -> AuditError {
    AuditError::Corrupt(s)
}

/// The log's keys: its own data key (slot 0 of its key slots) and the chain key derived
/// from it.
pub struct LogKeys {
    pub fields: DataKey,
    chain: Zeroizing<[u8; 32]>,
}

impl LogKeys {
    pub fn new(fields: DataKey) -> LogKeys {
        let hk = Hkdf::<Sha256>::new(Some(b"facegate audit"), fields.bytes());
        let mut chain = Zeroizing::new([0u8; 32]);
        if hk.expand(b"chain mac", chain.as_mut()).is_err() {
            unreachable!("HKDF output of 32 bytes");
        }
        LogKeys { fields, chain }
    }

    fn mac(&self, parts: &[&[u8]]) -> MacBytes {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(self.chain.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for p in parts {
            m.update(&(p.len() as u64).to_le_bytes());
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Build an event record chained to `prev`.
    pub fn seal_event(
        &self,
        key: &[u8],
        public: &Public,
        private: &Private,
        prev: &MacBytes,
    ) -> Result<(Vec<u8>, MacBytes)> {
        let pj = serde_json::to_vec(public).map_err(|e| corrupt(format!("event encode: {e}")))?;
        let sj = serde_json::to_vec(private).map_err(|e| corrupt(format!("event encode: {e}")))?;
        let sealed = self
            .fields
            .seal(&private_aad(public.id), &sj)
            .map_err(|e| corrupt(e.to_string()))?;
        let mut rec = Vec::with_capacity(4 + pj.len() + sealed.len() + 32);
        rec.extend_from_slice(&(pj.len() as u32).to_le_bytes());
        rec.extend_from_slice(&pj);
        rec.extend_from_slice(&sealed);
        let mac = self.mac(&[b"event", prev, key, &rec]);
        rec.extend_from_slice(&mac);
        Ok((rec, mac))
    }

    /// Check a record's mac against `prev`; returns its mac.
    pub fn check_event(&self, key: &[u8], rec: &[u8], prev: &MacBytes) -> Option<MacBytes> {
        let (body, mac) = split_mac(rec)?;
        (self.mac(&[b"event", prev, key, body]) == mac).then_some(mac)
    }

    /// Read an event record (without checking its chain).
    pub fn open_event(&self, rec: &[u8]) -> Result<(Public, Private)> {
        let bad = || corrupt(format!("event record of {} bytes", rec.len()));
        let (body, _) = split_mac(rec).ok_or_else(bad)?;
        let n = u32::from_le_bytes(
            body.get(..4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        let pj = body.get(4..4 + n).ok_or_else(bad)?;
        let public: Public =
            serde_json::from_slice(pj).map_err(|e| corrupt(format!("event record: {e}")))?;
        let plain = self
            .fields
            .open(
                &private_aad(public.id),
                &body[4 + n..],
                &format!("event {}", public.id),
            )
            .map_err(|e| corrupt(e.to_string()))?;
        let private: Private =
            serde_json::from_slice(&plain).map_err(|e| corrupt(format!("event record: {e}")))?;
        Ok((public, private))
    }

    pub fn seal_state(&self, s: &ChainState) -> Vec<u8> {
        let body = s.encode();
        let mac = self.mac(&[b"state", &body]);
        let mut out = body;
        out.extend_from_slice(&mac);
        out
    }

    pub fn open_state(&self, b: &[u8]) -> Result<ChainState> {
        let (body, mac) = split_mac(b).ok_or_else(|| corrupt("chain state record".into()))?;
        if self.mac(&[b"state", body]) != mac {
            return Err(AuditError::Tampered(
                "the chain state (counts and head of the log) was altered".into(),
            ));
        }
        ChainState::decode(body).ok_or_else(|| corrupt("chain state record".into()))
    }
}

fn private_aad(id: u64) -> Vec<u8> {
    let mut a = b"facegate event\0".to_vec();
    a.extend_from_slice(&id.to_be_bytes());
    a
}

fn crop_aad(id: u64) -> Vec<u8> {
    let mut a = b"facegate crop\0".to_vec();
    a.extend_from_slice(&id.to_be_bytes());
    a
}

fn split_mac(b: &[u8]) -> Option<(&[u8], MacBytes)> {
    let n = b.len().checked_sub(32)?;
    Some((&b[..n], b[n..].try_into().ok()?))
}

/// The mac stored at the end of an event record.
pub fn stored_mac(rec: &[u8]) -> Option<MacBytes> {
    split_mac(rec).map(|(_, m)| m)
}

/// A face crop: `slot (u32 LE) | sealed JPEG` under the crop's own key.
pub fn seal_crop(slot: u32, key: &DataKey, id: u64, jpeg: &[u8]) -> Result<Vec<u8>> {
    let sealed = key
        .seal(&crop_aad(id), jpeg)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut out = Vec::with_capacity(4 + sealed.len());
    out.extend_from_slice(&slot.to_le_bytes());
    out.extend(sealed);
    Ok(out)
}

pub fn crop_slot(b: &[u8]) -> Option<u32> {
    b.get(..4)?.try_into().ok().map(u32::from_le_bytes)
}

pub fn open_crop(key: &DataKey, id: u64, b: &[u8]) -> Result<Vec<u8>> {
    key.open(&crop_aad(id), b.get(4..).unwrap_or_default(), "face crop")
        .map_err(|e| corrupt(e.to_string()))
}

/// Where the chain stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainState {
    pub appended: u64,
    pub trimmed: u64,
    pub last_id: u64,
    /// The mac of the last appended event (zeros when none).
    pub head: MacBytes,
    /// The mac of the last trimmed event (zeros when none): the first kept event chains to it.
    pub anchor: MacBytes,
}

impl ChainState {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(88);
        b.extend_from_slice(&self.appended.to_le_bytes());
        b.extend_from_slice(&self.trimmed.to_le_bytes());
        b.extend_from_slice(&self.last_id.to_le_bytes());
        b.extend_from_slice(&self.head);
        b.extend_from_slice(&self.anchor);
        b
    }

    fn decode(b: &[u8]) -> Option<ChainState> {
        if b.len() != 88 {
            return None;
        }
        let u = |i: usize| Some(u64::from_le_bytes(b.get(i..i + 8)?.try_into().ok()?));
        Some(ChainState {
            appended: u(0)?,
            trimmed: u(8)?,
            last_id: u(16)?,
            head: b[24..56].try_into().ok()?,
            anchor: b[56..88].try_into().ok()?,
        })
    }
}

/// The result of [`AuditLog::verify`](super::AuditLog::verify).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    /// Events whose link was checked and found intact.
    pub intact: usize,
    /// The first broken link, in append order; `None` when the whole chain holds.
    pub broken: Option<BrokenLink>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokenLink {
    /// The event at which the chain breaks (the first one that does not verify), if known.
    pub event: Option<u64>,
    pub time_ms: Option<i64>,
    pub reason: String,
}
