//! Removing persons and templates, with crypto-shredding: sled keeps stale copies of what it
//! overwrote or removed until it reuses the space, so a removal must also make those copies
//! unreadable.
//!
//! - A removed person's data key is destroyed: every record ever sealed under it (person,
//!   templates, outbox entries) can no longer be opened.
//! - A person who loses some templates but stays enrolled gets a new data key: their record,
//!   their remaining templates and their pending outbox entries are re-sealed under it in the
//!   transaction that removes the templates, then the old key is destroyed. A crash before
//!   the transaction leaves the new key an orphan; after it, the old one; either is destroyed
//!   at the next open.

use std::collections::{BTreeMap, BTreeSet};

use sled::Transactional;

use super::cache::Cache;
use super::outbox::Op;
use super::sealed::{seal_op_with, seal_person_with, seal_template_with};
use super::{Removed, Result};

/// A person's records, re-sealed under a new key, ready to be written.
struct Resealed {
    slot: u32,
    key: crate::crypto::DataKey,
    person: Vec<u8>,
    templates: Vec<(u64, Vec<u8>)>,
    outbox: Vec<(u64, Vec<u8>)>,
}

impl Cache {
    /// Remove a person, their templates and their pending outbox entries; queue `op` (the
    /// remote tombstone) in the same transaction. Their key is destroyed.
    pub fn remove_person(&self, id: &str, op: Option<&Op>) -> Result<Removed> {
        let _sealing = self.sealing.write();
        let ids = self.template_ids(id);
        let entry = self.outbox_entry(op)?;
        let stale = self.outbox_entries_for(id)?;
        let existed = (&self.persons, &self.templates, &self.outbox)
            .transaction(|(p, t, o)| {
                let existed = p.remove(id.as_bytes())?.is_some();
                for tid in &ids {
                    t.remove(&tid.to_be_bytes())?;
                }
                for (s, _) in &stale {
                    o.remove(&s.to_be_bytes())?;
                }
                if let Some((seq, e)) = &entry {
                    o.insert(&seq.to_be_bytes(), e.as_slice())?;
                }
                Ok(existed)
            })
            .map_err(|e| self.tx_error(e))?;
        self.flush()?;
        self.keys.destroy(id)?;
        let mut index = self.write_index();
        for tid in &ids {
            index.remove(*tid, id);
        }
        Ok(Removed {
            persons: usize::from(existed),
            templates: ids.len(),
            outbox_entries: stale.len(),
            remote_confirmed: false,
        })
    }

    /// Remove templates (those present), with an optional outbox entry. Returns how many
    /// were present. Each owner still enrolled keeps their other records under a new key.
    pub fn remove_templates(&self, ids: &[u64], op: Option<&Op>) -> Result<usize> {
        let _sealing = self.sealing.write();
        let mut owners: Vec<(u64, String)> = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = self.template_record(*id)? {
                owners.push((t.id, t.person));
            }
        }
        let going: BTreeSet<u64> = owners.iter().map(|(id, _)| *id).collect();
        let persons: BTreeSet<&str> = owners.iter().map(|(_, p)| p.as_str()).collect();
        let mut resealed: BTreeMap<String, Resealed> = BTreeMap::new();
        let prepared = (|| {
            for person in &persons {
                if let Some(r) = self.reseal(person, &going)? {
                    resealed.insert((*person).to_owned(), r);
                }
            }
            self.outbox_entry(op)
        })();
        let written = prepared.and_then(|entry| {
            (&self.persons, &self.templates, &self.outbox)
                .transaction(|(p, t, o)| {
                    for id in &going {
                        t.remove(&id.to_be_bytes())?;
                    }
                    for (id, r) in &resealed {
                        p.insert(id.as_bytes(), r.person.as_slice())?;
                        for (tid, b) in &r.templates {
                            t.insert(&tid.to_be_bytes(), b.as_slice())?;
                        }
                        for (seq, b) in &r.outbox {
                            o.insert(&seq.to_be_bytes(), b.as_slice())?;
                        }
                    }
                    if let Some((seq, e)) = &entry {
                        o.insert(&seq.to_be_bytes(), e.as_slice())?;
                    }
                    Ok(())
                })
                .map_err(|e| self.tx_error(e))?;
            self.flush()
        });
        if let Err(e) = written {
            for r in resealed.values() {
                let _ = self.keys.discard(r.slot);
            }
            return Err(e);
        }
        for (id, r) in resealed {
            self.keys.replace(&id, r.slot, r.key)?;
        }
        let mut index = self.write_index();
        for (id, person) in &owners {
            index.remove(*id, person);
        }
        Ok(owners.len())
    }

    /// The person's records but the templates in `going`, sealed under a new key; `None`
    /// when the person is not stored (templates without their person: nothing to keep).
    fn reseal(&self, person: &str, going: &BTreeSet<u64>) -> Result<Option<Resealed>> {
        let Some(record) = self.person_record(person)? else {
            return Ok(None);
        };
        let mut kept = Vec::new();
        for tid in self.template_ids(person) {
            if !going.contains(&tid)
                && let Some(t) = self.template_record(tid)?
            {
                kept.push(t);
            }
        }
        let pending = self.outbox_entries_for(person)?;
        let (slot, key) = self.keys.fresh()?;
        let sealed = (|| {
            Ok(Resealed {
                slot,
                person: seal_person_with(&record, slot, &key)?,
                templates: kept
                    .iter()
                    .map(|t| Ok((t.id, seal_template_with(t, &key)?)))
                    .collect::<Result<_>>()?,
                outbox: pending
                    .iter()
                    .map(|(seq, op)| Ok((*seq, seal_op_with(op, &key)?)))
                    .collect::<Result<_>>()?,
                key: key.clone(),
            })
        })();
        if sealed.is_err() {
            let _ = self.keys.discard(slot);
        }
        sealed.map(Some)
    }

    /// Outbox entries that carry this person's data (would (re)create them remotely), for a
    /// caller that holds `sealing`.
    fn outbox_entries_for(&self, person: &str) -> Result<Vec<(u64, Op)>> {
        Ok(self
            .outbox_records(usize::MAX)?
            .into_iter()
            .filter(|(_, op)| op.creates_for() == Some(person))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gallery::cache::tests::key;
    use crate::gallery::record::{ModelTag, NewPerson};
    use crate::gallery::{Gallery, normalised};

    fn v(seed: usize) -> Vec<f32> {
        (0..8)
            .map(|j| ((seed * 31 + j * 7) % 13) as f32 - 6.0)
            .collect()
    }

    fn person(c: &Cache, id: &str) {
        c.create_person_local(
            NewPerson {
                id: Some(id.into()),
                name: format!("Name of {id}"),
                external_id: Some(format!("card-{id}")),
                ..NewPerson::default()
            },
            true,
        )
        .unwrap();
    }

    #[test]
    fn a_removed_template_cannot_be_opened_and_the_rest_of_its_person_can() {
        let dir = std::env::temp_dir().join(format!("facegate-removal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let model = ModelTag::new("m", 8);
        let (gone, kept, stale_template, stale_person, other_slot) = {
            let c = Cache::open(&dir, &model, &key()).unwrap();
            person(&c, "ann");
            person(&c, "bob");
            let ids = c
                .add_templates_local("ann", vec![v(1), v(2), v(3)], true)
                .unwrap();
            c.add_templates_local("bob", vec![v(4)], true).unwrap();
            let stale_template = c.templates.get(ids[1].to_be_bytes()).unwrap().unwrap();
            let stale_person = c.persons.get("ann").unwrap().unwrap();
            let other_slot = c.keys.get("bob").unwrap().0;
            let outbox = c.outbox_len();
            c.delete_template_local(ids[1], true).unwrap();
            // Nothing sealed before the removal opens with the person's key now.
            assert!(c.keys.open_template(ids[1], &stale_template).is_err());
            assert!(c.keys.open_person("ann", &stale_person).is_err());
            // Everything that stays opens: the person, the other templates, the outbox
            // (whose entries of ann were re-sealed too).
            assert_eq!(c.get_person("ann").unwrap().unwrap().name, "Name of ann");
            assert!(c.template(ids[0]).unwrap().is_some());
            assert!(c.template(ids[1]).unwrap().is_none());
            assert_eq!(c.outbox_peek(usize::MAX).unwrap().len(), outbox + 1);
            assert_eq!(c.keys.get("bob").unwrap().0, other_slot, "bob untouched");
            (
                ids[1],
                [ids[0], ids[2]],
                stale_template,
                stale_person,
                other_slot,
            )
        };
        // After a restart too; the search still finds ann by a kept template.
        let c = Cache::open(&dir, &model, &key()).unwrap();
        assert!(c.keys.open_template(gone, &stale_template).is_err());
        assert!(c.keys.open_person("ann", &stale_person).is_err());
        let mut kept = kept.to_vec();
        kept.sort_unstable();
        assert_eq!(c.template_ids("ann"), kept);
        for id in kept {
            assert!(c.template(id).unwrap().is_some());
        }
        let probe = normalised(&v(3), 8).unwrap();
        assert_eq!(c.search(&probe, 1)[0].person, "ann");
        assert_eq!(c.keys.get("bob").unwrap().0, other_slot);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let stats = rt.block_on(c.stats()).unwrap();
        assert_eq!((stats.persons, stats.templates), (2, 3));
        drop(c);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
