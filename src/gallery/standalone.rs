//! The local gallery's own operations (create, update, enroll, delete, verify), shared by the
//! standalone door and the tiered gallery, and [`Gallery`] for a door whose cache is the whole
//! gallery (no central store, no outbox).

use async_trait::async_trait;

use super::cache::Cache;
use super::outbox::Op;
use super::record::{ModelTag, NewPerson, Person, PersonPatch, Template};
use super::{
    Gallery, GalleryError, Identification, Match, RemoteState, Removed, Result, Source, Stats,
    SyncReport, Written, new_person_id, new_template_id, normalised, now_ms,
};

impl Cache {
    /// Create a person locally; `queue` adds the outbox entry for the central store.
    pub fn create_person_local(&self, new: NewPerson, queue: bool) -> Result<Person> {
        let id = match &new.id {
            Some(id) => id.clone(),
            None => new_person_id()?,
        };
        if self.get_person(&id)?.is_some() {
            return Err(GalleryError::PersonExists(id));
        }
        let person = Person::from_new(id, new, now_ms())?;
        let op = Op::UpsertPerson {
            person: person.clone(),
        };
        self.put_person(&person, queue.then_some(&op))?;
        tracing::info!(person = %person.id, "person created");
        Ok(person)
    }

    pub fn update_person_local(&self, id: &str, patch: PersonPatch, queue: bool) -> Result<Person> {
        let mut person = self
            .get_person(id)?
            .ok_or_else(|| GalleryError::UnknownPerson(id.to_owned()))?;
        person.apply(patch, now_ms())?;
        let op = Op::UpsertPerson {
            person: person.clone(),
        };
        self.put_person(&person, queue.then_some(&op))?;
        tracing::info!(person = %person.id, enabled = person.enabled, "person updated");
        Ok(person)
    }

    pub fn delete_person_local(&self, id: &str, queue: bool) -> Result<Removed> {
        if self.get_person(id)?.is_none() {
            return Err(GalleryError::UnknownPerson(id.to_owned()));
        }
        let op = Op::DeletePerson {
            id: id.to_owned(),
            templates: self.template_ids(id),
            at_ms: now_ms(),
        };
        let removed = self.remove_person(id, queue.then_some(&op))?;
        tracing::info!(person = %id, templates = removed.templates, "person deleted");
        Ok(removed)
    }

    pub fn add_templates_local(
        &self,
        person: &str,
        embeddings: Vec<Vec<f32>>,
        queue: bool,
    ) -> Result<Vec<u64>> {
        if self.get_person(person)?.is_none() {
            return Err(GalleryError::UnknownPerson(person.to_owned()));
        }
        if embeddings.is_empty() {
            return Err(GalleryError::Invalid("no embeddings given".into()));
        }
        let now = now_ms();
        let templates = embeddings
            .iter()
            .map(|e| {
                Ok(Template {
                    id: new_template_id()?,
                    person: person.to_owned(),
                    embedding: normalised(e, self.model.dim)?,
                    updated_ms: now,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<u64> = templates.iter().map(|t| t.id).collect();
        let op = Op::UpsertTemplates {
            person: person.to_owned(),
            ids: ids.clone(),
        };
        self.put_templates(&templates, queue.then_some(&op))?;
        tracing::info!(person = %person, templates = ids.len(), "templates enrolled");
        Ok(ids)
    }

    pub fn delete_template_local(&self, id: u64, queue: bool) -> Result<Removed> {
        if self.template(id)?.is_none() {
            return Err(GalleryError::UnknownTemplate(id));
        }
        let op = Op::DeleteTemplates {
            ids: vec![id],
            at_ms: now_ms(),
        };
        let n = self.remove_templates(&[id], queue.then_some(&op))?;
        tracing::info!(template = id, "template deleted");
        Ok(Removed {
            templates: n,
            ..Removed::default()
        })
    }

    pub fn verify_local(&self, person: &str, probe: &[f32]) -> Result<Option<Match>> {
        if self.get_person(person)?.is_none() {
            return Err(GalleryError::UnknownPerson(person.to_owned()));
        }
        let probe = normalised(probe, self.model.dim)?;
        Ok(self.best_of(person, &probe))
    }
}

/// A standalone door: the cache is the whole gallery (no central store, no outbox).
#[async_trait]
impl Gallery for Cache {
    fn model(&self) -> &ModelTag {
        &self.model
    }

    async fn create_person(&self, new: NewPerson) -> Result<Person> {
        self.create_person_local(new, false)
    }

    async fn update_person(&self, id: &str, patch: PersonPatch) -> Result<Person> {
        self.update_person_local(id, patch, false)
    }

    async fn person(&self, id: &str) -> Result<Option<Person>> {
        self.get_person(id)
    }

    async fn persons(&self, after: Option<&str>, limit: usize) -> Result<Vec<Person>> {
        self.list_persons(after, limit)
    }

    async fn templates_of(&self, id: &str) -> Result<Vec<u64>> {
        Ok(self.template_ids(id))
    }

    async fn delete_person(&self, id: &str) -> Result<Removed> {
        self.delete_person_local(id, false)
    }

    async fn add_templates(&self, person: &str, embeddings: Vec<Vec<f32>>) -> Result<Written> {
        Ok(Written {
            templates: self.add_templates_local(person, embeddings, false)?,
            remote_confirmed: false,
        })
    }

    async fn delete_template(&self, id: u64) -> Result<Removed> {
        self.delete_template_local(id, false)
    }

    async fn identify(&self, probe: &[f32], k: usize) -> Result<Identification> {
        let probe = normalised(probe, self.model.dim)?;
        Ok(Identification {
            candidates: self.search(&probe, k),
            source: Source::Cache,
            remote: RemoteState::None,
            refuse: None,
        })
    }

    async fn verify(&self, person: &str, probe: &[f32]) -> Result<Option<Match>> {
        self.verify_local(person, probe)
    }

    async fn sync(&self) -> Result<SyncReport> {
        Ok(SyncReport::default())
    }

    async fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            model: self.model.clone(),
            persons: self.person_count(),
            templates: self.template_count(),
            outbox_depth: self.outbox_len(),
            bytes_per_template: self.bytes_per_template(),
            remote: RemoteState::None,
            last_sync_ms: 0,
            remote_templates: None,
        })
    }
}
