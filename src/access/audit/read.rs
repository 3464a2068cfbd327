//! Reading the log: the face-crop retention, one crop, pages of events, and the chain's
//! verification.

use super::log::{Tx, id_of_key, key, tx_error};
use sled::Transactional;

use super::seal::{self as audit_seal};
use super::*;

impl AuditLog {
    /// Apply the crop retention now (by the system clock): delete crops older than its age
    /// limit, then the oldest beyond its count. Returns how many were deleted.
    pub fn purge_crops(&self) -> Result<usize> {
        self.purge_crops_at(crate::gallery::now_ms())
    }

    /// [`AuditLog::purge_crops`] as if the time were `now_ms`. A deleted crop's key is
    /// destroyed: what sled keeps of it can no longer be decrypted.
    pub fn purge_crops_at(&self, now_ms: i64) -> Result<usize> {
        let mut count = self.lock();
        let mut deleted = 0;
        let cutoff = key(now_ms.saturating_sub(self.retention.max_age_ms), 0);
        loop {
            let oldest = self.crop_times.first().map_err(|e| self.storage(e))?;
            let Some((k, _)) = oldest else {
                count.crops = 0;
                break;
            };
            if k.as_ref() >= cutoff.as_slice() && count.crops <= self.retention.max_count {
                break;
            }
            let id = id_of_key(&k);
            let c = (&self.crops, &self.crop_times)
                .transaction(|(crops, times)| {
                    let c = crops.remove(&id[..])?;
                    times.remove(&k)?;
                    Ok::<_, Tx>(c)
                })
                .map_err(|e| self.storage(tx_error(e)))?;
            count.crops = count.crops.saturating_sub(1);
            if self.shred(c)? {
                deleted += 1;
            }
        }
        if deleted > 0 {
            tracing::info!(
                deleted,
                kept = count.crops,
                "face crops past their retention deleted"
            );
        }
        Ok(deleted)
    }

    pub(super) fn has_crop(&self, id: u64) -> Result<bool> {
        self.crops
            .contains_key(id.to_be_bytes())
            .map_err(|e| self.storage(e))
    }

    /// The face crop (JPEG) stored with event `id`, if any.
    pub fn face_crop(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let Some(v) = self
            .crops
            .get(id.to_be_bytes())
            .map_err(|e| self.storage(e))?
        else {
            return Ok(None);
        };
        let slot = audit_seal::crop_slot(&v)
            .ok_or_else(|| AuditError::Corrupt(format!("face crop {id}: bad header")))?;
        let key = self.slots.key(slot)?;
        Ok(Some(audit_seal::open_crop(&key, id, &v)?))
    }

    pub(super) fn decode(&self, rec: &[u8]) -> Result<Event> {
        let (p, s) = self.keys.open_event(rec)?;
        Ok(Event {
            id: p.id,
            time_ms: p.time_ms,
            action: p.action,
            outcome: p.outcome,
            source: p.source,
            person: s.person,
            template: s.template,
            score: s.score,
            reason: s.reason,
            quality: s.quality,
            face_crop: false,
        })
    }

    /// Events matching `filter`, newest first, at most `limit` (1..=[`MAX_PAGE`]), continuing
    /// after `cursor` (a previous page's `next`).
    pub fn query(
        &self,
        filter: &EventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EventPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        let lo = key(filter.from_ms.unwrap_or(0), 0);
        let mut hi = match filter.until_ms {
            Some(t) => key(t, 0),
            None => [0xff; 16],
        };
        if let Some(c) = cursor {
            let (t, id) = c
                .split_once('-')
                .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.parse::<u64>().ok()?)))
                .ok_or_else(|| {
                    AuditError::Invalid(format!(
                        "cursor {c:?}: pass the `next` value of a previous page"
                    ))
                })?;
            hi = hi.min(key(t, id));
        }
        if lo >= hi {
            return Ok(EventPage {
                events: Vec::new(),
                next: None,
            });
        }
        let mut events = Vec::new();
        let mut more = false;
        for item in self.events.range(lo..hi).rev() {
            let (_, v) = item.map_err(|e| self.storage(e))?;
            let mut e = self.decode(&v)?;
            if !filter.matches(&e) {
                continue;
            }
            if events.len() == limit {
                more = true;
                break;
            }
            e.face_crop = self.has_crop(e.id)?;
            events.push(e);
        }
        let next = if more {
            events.last().map(Event::cursor)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    /// Check the whole chain: every event in append order against the mac of the one before
    /// it (from the anchor left by trimming), the head and the counts in the authenticated
    /// state, and no event outside the chain. Reports the first broken link.
    pub fn verify(&self) -> Result<Verification> {
        let count = self.lock();
        let broken = |event: Option<u64>, time_ms: Option<i64>, reason: String| {
            Some(BrokenLink {
                event,
                time_ms,
                reason,
            })
        };
        let mut intact = 0;
        if let Some(d) = &self.state_damage {
            return Ok(Verification {
                intact,
                broken: broken(None, None, d.clone()),
            });
        }
        let state = count.state;
        let mut prev = state.anchor;
        let mut chained = std::collections::HashSet::new();
        let mut last = None;
        for kv in self.chain.iter() {
            let (idk, k) = kv.map_err(|e| self.storage(e))?;
            let id = u64::from_be_bytes(idk.as_ref().try_into().unwrap_or_default());
            let time = (k.len() == 16)
                .then(|| u64::from_be_bytes(k[..8].try_into().unwrap_or_default()) as i64);
            if id_of_key(&k)[..] != idk[..] {
                return Ok(Verification {
                    intact,
                    broken: broken(
                        Some(id),
                        time,
                        format!("event {id}: its chain entry was altered"),
                    ),
                });
            }
            let Some(rec) = self.events.get(&k).map_err(|e| self.storage(e))? else {
                let reason = format!("event {id} was removed from the log");
                return Ok(Verification {
                    intact,
                    broken: broken(Some(id), time, reason),
                });
            };
            match self.keys.check_event(&k, &rec, &prev) {
                Some(mac) => prev = mac,
                None => {
                    let reason = if intact == 0 && state.trimmed == 0 && prev == [0; 32] {
                        format!("event {id} was altered")
                    } else {
                        format!(
                            "event {id} was altered, or the event appended before it was removed"
                        )
                    };
                    return Ok(Verification {
                        intact,
                        broken: broken(Some(id), time, reason),
                    });
                }
            }
            chained.insert(k.to_vec());
            last = Some((id, time));
            intact += 1;
        }
        if chained.len() != self.events.len() {
            for kv in self.events.iter() {
                let (k, _) = kv.map_err(|e| self.storage(e))?;
                if !chained.contains(k.as_ref()) {
                    let id = u64::from_be_bytes(id_of_key(&k));
                    let reason = format!("event {id} is not part of the chain (inserted)");
                    return Ok(Verification {
                        intact,
                        broken: broken(Some(id), None, reason),
                    });
                }
            }
        }
        if prev != state.head {
            let (id, time) = last.unzip();
            let reason = "events appended after the last intact one were removed".to_owned();
            return Ok(Verification {
                intact,
                broken: broken(id.map(|i| i + 1), time.flatten(), reason),
            });
        }
        let expected = state.appended.saturating_sub(state.trimmed);
        if intact as u64 != expected {
            let reason = format!("the log holds {intact} events; its state says {expected}");
            return Ok(Verification {
                intact,
                broken: broken(None, None, reason),
            });
        }
        Ok(Verification {
            intact,
            broken: None,
        })
    }

    pub(crate) fn meta_tree(&self) -> sled::Tree {
        self.meta.clone()
    }

    /// Write everything to disk now (sled also does it on its own every half second).
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.storage(e))
    }
}
