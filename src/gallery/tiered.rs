//! The tiered gallery: the device's cache first, the central store on a miss.
//!
//! - Identify searches the cache; when its best score is under the accept threshold it asks
//!   the central store (under [`Breaker`] with `search_timeout_ms`), and a remote hit brings the
//!   person and their templates into the cache, so the next visit is decided offline.
//! - Every write is committed to the cache together with an outbox entry (one sled
//!   transaction, flushed), then the outbox is replayed in order. When the central store is
//!   unreachable the entries wait and are replayed by the next write or sync; replays are
//!   idempotent (upserts and tombstones by primary key).
//! - Sync pulls the rows changed since the watermark (minus `sync_overlap_s`) and applies them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::cache::{Cache, META_LAST_SYNC, META_WATERMARK};
use super::config::{MilvusConfig, OfflinePolicy};
use super::outbox::Op;
use super::record::{ModelTag, NewPerson, Person, PersonPatch, Template};
use super::remote::{Breaker, Changes, RemoteStore};
use super::{
    Gallery, GalleryError, Identification, Match, RemoteState, Removed, Result, Source, Stats,
    SyncReport, Written, normalised, now_ms,
};

/// Rows per sync page before the window is narrowed.
const SYNC_PAGE: usize = 4096;
/// Outbox entries read per replay step.
const REPLAY_BATCH: usize = 64;

pub struct Tiered {
    cache: Arc<Cache>,
    remote: Arc<dyn RemoteStore>,
    breaker: Breaker,
    config: MilvusConfig,
    accept: f32,
    replay: tokio::sync::Mutex<()>,
    last_error: Mutex<Option<String>>,
}

impl Tiered {
    /// `accept` is the score at which the cache's answer is good enough not to ask Milvus.
    pub fn new(
        cache: Arc<Cache>,
        remote: Arc<dyn RemoteStore>,
        config: &MilvusConfig,
        accept: f32,
    ) -> Tiered {
        Tiered {
            cache,
            remote,
            breaker: Breaker::new(
                config.breaker_failures,
                Duration::from_millis(config.breaker_cooldown_ms),
            ),
            config: config.clone(),
            accept,
            replay: tokio::sync::Mutex::new(()),
            last_error: Mutex::new(None),
        }
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    pub fn remote(&self) -> &Arc<dyn RemoteStore> {
        &self.remote
    }

    fn note(&self, r: &Result<impl Sized>) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match r {
            Ok(_) => *last = None,
            Err(GalleryError::RemoteUnavailable(e) | GalleryError::Remote(e)) => {
                *last = Some(e.clone())
            }
            Err(_) => {}
        }
    }

    async fn call<T>(
        &self,
        timeout: Duration,
        what: &str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let r = self.breaker.call(timeout, what, fut).await;
        self.note(&r);
        r
    }

    /// The central store's state as last seen.
    pub fn remote_state(&self) -> RemoteState {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match last {
            None if !self.breaker.is_open() => RemoteState::Online,
            other => RemoteState::Offline {
                since_ms: self.cache.meta_i64(META_LAST_SYNC).unwrap_or(0),
                reason: other.unwrap_or_else(|| self.breaker.last_error()),
            },
        }
    }

    /// [`Gallery::online`]: the last call's outcome and the breaker, without touching sled.
    fn online_now(&self) -> Option<bool> {
        let failed = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if failed || self.breaker.is_open() {
            Some(false)
        } else if self.remote.is_ready() {
            Some(true)
        } else {
            // Not connected yet and no failure seen: unknown.
            None
        }
    }

    /// Why the door must refuse everyone, if it has been offline too long and its policy says so.
    pub fn offline_refusal(&self) -> Option<String> {
        if self.config.offline_policy != OfflinePolicy::AdmitNobody {
            return None;
        }
        let last = self.cache.meta_i64(META_LAST_SYNC).unwrap_or(0);
        let age_s = (now_ms() - last) / 1000;
        (age_s > self.config.max_offline_s as i64).then(|| {
            if last == 0 {
                "never synced with the central gallery; offline policy is admit_nobody".to_owned()
            } else {
                format!(
                    "no sync with the central gallery for {age_s} s (max_offline_s = {}); offline policy is admit_nobody",
                    self.config.max_offline_s
                )
            }
        })
    }

    /// Replay the outbox, in order, until it is empty or the central store fails.
    /// Returns how many entries were confirmed.
    pub async fn replay_outbox(&self) -> Result<usize> {
        let _one_at_a_time = self.replay.lock().await;
        let timeout = self.config.write_timeout();
        let mut done = 0;
        loop {
            let batch = self.cache.outbox_peek(REPLAY_BATCH)?;
            if batch.is_empty() {
                return Ok(done);
            }
            for (seq, op) in batch {
                self.call(timeout, "outbox replay", self.apply_remote(&op))
                    .await?;
                self.cache.outbox_done(seq)?;
                done += 1;
            }
        }
    }

    async fn apply_remote(&self, op: &Op) -> Result<()> {
        match op {
            Op::UpsertPerson { person } => self.remote.upsert_person(person).await,
            Op::DeletePerson {
                id,
                templates,
                at_ms,
            } => self.remote.delete_person(id, templates, *at_ms).await,
            Op::UpsertTemplates { ids, .. } => {
                // Vectors come from the cache; a template deleted since is skipped (its
                // tombstone is a later entry).
                let mut ts = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(t) = self.cache.template(*id)? {
                        ts.push(t);
                    }
                }
                if ts.is_empty() {
                    return Ok(());
                }
                self.remote.upsert_templates(&ts).await
            }
            Op::DeleteTemplates { ids, at_ms } => self.remote.delete_templates(ids, *at_ms).await,
        }
    }

    /// Replay after a local write; a failure leaves the entries queued (and is logged).
    async fn write_through(&self) -> bool {
        match self.replay_outbox().await {
            Ok(_) => self.cache.outbox_len() == 0,
            Err(e) => {
                tracing::warn!(error = %e, queued = self.cache.outbox_len(), "central gallery write queued in the outbox");
                false
            }
        }
    }

    /// Bring a person and their templates from the central store into the cache.
    pub async fn promote(&self, person: &str) -> Result<usize> {
        let timeout = self.config.write_timeout();
        let p = self
            .call(timeout, "fetch person", self.remote.person(person))
            .await?;
        let Some(p) = p else {
            return Ok(0);
        };
        let ts = self
            .call(
                timeout,
                "fetch templates",
                self.remote.person_templates(person),
            )
            .await?;
        let ts: Vec<Template> = ts
            .into_iter()
            .filter(|t| t.embedding.len() == self.cache.model_tag().dim)
            .collect();
        self.cache.put_person(&p, None)?;
        self.cache.put_templates(&ts, None)?;
        tracing::info!(person = %person, templates = ts.len(), "person promoted from the central gallery into the cache");
        Ok(ts.len())
    }

    /// Apply one page of remote changes to the cache.
    fn apply_changes(&self, c: &Changes, report: &mut SyncReport) -> Result<()> {
        for pc in &c.persons {
            let local = self.cache.get_person(&pc.id)?;
            if pc.deleted {
                if local.is_some() {
                    let r = self.cache.remove_person(&pc.id, None)?;
                    report.persons_removed += 1;
                    report.templates_removed += r.templates;
                }
            } else if let Some(p) = &pc.person {
                // Milvus holds no names (see milvus::remote_doc): keep the one known here.
                let mut p = p.clone();
                if let Some(l) = &local
                    && p.name == p.id
                {
                    p.name = l.name.clone();
                }
                let p = &p;
                let newer = local.as_ref().is_none_or(|l| l.updated_ms <= p.updated_ms);
                if newer && local.as_ref() != Some(p) {
                    self.cache.put_person(p, None)?;
                    report.persons_updated += 1;
                }
            }
        }
        let mut add = Vec::new();
        let mut remove = Vec::new();
        for tc in &c.templates {
            let here = self.cache.template(tc.id)?.is_some();
            match (&tc.embedding, tc.deleted) {
                (_, true) if here => remove.push(tc.id),
                (Some(v), false) if !here => {
                    if self.cache.get_person(&tc.person)?.is_none() {
                        // The person's row is older than the window: skip the template; the
                        // first identify hit promotes them.
                        continue;
                    }
                    match normalised(v, self.cache.model_tag().dim) {
                        Ok(embedding) => add.push(Template {
                            id: tc.id,
                            person: tc.person.clone(),
                            embedding,
                            updated_ms: tc.updated_ms,
                        }),
                        Err(e) => {
                            tracing::warn!(template = tc.id, error = %e, "remote template skipped")
                        }
                    }
                }
                _ => {}
            }
        }
        if !remove.is_empty() {
            report.templates_removed += self.cache.remove_templates(&remove, None)?;
        }
        if !add.is_empty() {
            self.cache.put_templates(&add, None)?;
            report.templates_added += add.len();
        }
        Ok(())
    }

    /// Run [`Gallery::sync`] every `sync_interval_s` until the returned task is aborted.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(Duration::from_secs(me.config.sync_interval_s.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match me.sync().await {
                    Ok(r) => tracing::debug!(?r, "gallery sync"),
                    Err(e) => {
                        tracing::warn!(error = %e, "gallery sync failed; deciding from the cache")
                    }
                }
            }
        })
    }
}

#[async_trait]
impl Gallery for Tiered {
    fn model(&self) -> &ModelTag {
        self.cache.model_tag()
    }

    async fn create_person(&self, new: NewPerson) -> Result<Person> {
        if let Some(id) = &new.id
            && self.cache.get_person(id)?.is_none()
        {
            let remote = self
                .call(
                    self.config.search_timeout(),
                    "check person",
                    self.remote.person(id),
                )
                .await;
            if let Ok(Some(_)) = remote {
                return Err(GalleryError::PersonExists(id.clone()));
            }
        }
        let p = self.cache.create_person_local(new, true)?;
        self.write_through().await;
        Ok(p)
    }

    async fn update_person(&self, id: &str, patch: PersonPatch) -> Result<Person> {
        if self.cache.get_person(id)?.is_none() {
            self.promote(id).await.ok();
        }
        let p = self.cache.update_person_local(id, patch, true)?;
        self.write_through().await;
        Ok(p)
    }

    async fn person(&self, id: &str) -> Result<Option<Person>> {
        if let Some(p) = self.cache.get_person(id)? {
            return Ok(Some(p));
        }
        self.call(
            self.config.search_timeout(),
            "fetch person",
            self.remote.person(id),
        )
        .await
    }

    async fn persons(&self, after: Option<&str>, limit: usize) -> Result<Vec<Person>> {
        self.cache.list_persons(after, limit)
    }

    async fn templates_of(&self, id: &str) -> Result<Vec<u64>> {
        Ok(self.cache.template_ids(id))
    }

    async fn delete_person(&self, id: &str) -> Result<Removed> {
        let mut removed = if self.cache.get_person(id)?.is_some() {
            self.cache.delete_person_local(id, true)?
        } else {
            // Known only centrally: queue the tombstone on its own.
            match self
                .call(
                    self.config.write_timeout(),
                    "fetch person",
                    self.remote.person(id),
                )
                .await?
            {
                Some(_) => {
                    self.cache.outbox_push(&Op::DeletePerson {
                        id: id.to_owned(),
                        templates: Vec::new(),
                        at_ms: now_ms(),
                    })?;
                    Removed {
                        persons: 1,
                        ..Removed::default()
                    }
                }
                None => return Err(GalleryError::UnknownPerson(id.to_owned())),
            }
        };
        removed.remote_confirmed = self.write_through().await;
        Ok(removed)
    }

    async fn add_templates(&self, person: &str, embeddings: Vec<Vec<f32>>) -> Result<Written> {
        if self.cache.get_person(person)?.is_none() {
            self.promote(person).await.ok();
        }
        let templates = self.cache.add_templates_local(person, embeddings, true)?;
        Ok(Written {
            templates,
            remote_confirmed: self.write_through().await,
        })
    }

    async fn delete_template(&self, id: u64) -> Result<Removed> {
        let mut removed = if self.cache.template(id)?.is_some() {
            self.cache.delete_template_local(id, true)?
        } else {
            self.cache.outbox_push(&Op::DeleteTemplates {
                ids: vec![id],
                at_ms: now_ms(),
            })?;
            Removed::default()
        };
        removed.remote_confirmed = self.write_through().await;
        Ok(removed)
    }

    async fn identify(&self, probe: &[f32], k: usize) -> Result<Identification> {
        let probe = normalised(probe, self.cache.model_tag().dim)?;
        let mut candidates = self.cache.search(&probe, k);
        let mut source = Source::Cache;
        let local_best = candidates.first().map_or(f32::NEG_INFINITY, |m| m.score);
        if local_best < self.accept && !self.remote.is_ready() {
            tracing::debug!("central gallery not connected yet; cache answer stands");
        } else if local_best < self.accept {
            let remote = self
                .call(
                    self.config.search_timeout(),
                    "search",
                    self.remote.search(&probe, k * 4),
                )
                .await;
            match remote {
                Ok(hits) => {
                    if let Some(best) = hits.first()
                        && best.score > local_best
                    {
                        source = Source::Remote;
                        if best.score >= self.accept
                            && self.cache.template(best.template)?.is_none()
                            && let Err(e) = self.promote(&best.person).await
                        {
                            tracing::warn!(person = %best.person, error = %e, "promotion failed");
                        }
                    }
                    candidates = merge(candidates, hits, k);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "central gallery not asked; cache answer stands")
                }
            }
        }
        Ok(Identification {
            candidates,
            source,
            remote: self.remote_state(),
            refuse: self.offline_refusal(),
        })
    }

    async fn verify(&self, person: &str, probe: &[f32]) -> Result<Option<Match>> {
        if self.cache.template_ids(person).is_empty() {
            self.promote(person).await.ok();
        }
        self.cache.verify_local(person, probe)
    }

    async fn sync(&self) -> Result<SyncReport> {
        // Connect only when not connected: an established client answers `connect` without
        // asking the server, and that must not count as the store being back.
        if !self.remote.is_ready() {
            self.call(
                self.config.write_timeout(),
                "connect",
                self.remote.connect(),
            )
            .await?;
        }
        let mut report = SyncReport {
            outbox_replayed: self.replay_outbox().await?,
            ..SyncReport::default()
        };
        let watermark = self.cache.meta_i64(META_WATERMARK)?;
        let overlap = (self.config.sync_overlap_s * 1000) as i64;
        let until = now_ms();
        let mut lo = if watermark == 0 {
            0
        } else {
            watermark - overlap
        };
        while lo < until {
            let mut hi = until;
            loop {
                let page = self
                    .call(
                        self.config.write_timeout(),
                        "sync",
                        self.remote.changes(lo, hi, SYNC_PAGE),
                    )
                    .await?;
                match page {
                    Some(changes) => {
                        self.apply_changes(&changes, &mut report)?;
                        break;
                    }
                    None if hi - lo > 1 => hi = lo + (hi - lo) / 2,
                    None => {
                        return Err(GalleryError::Remote(format!(
                            "more than {SYNC_PAGE} rows changed within 1 ms at {lo}"
                        )));
                    }
                }
            }
            lo = hi;
        }
        self.cache.set_meta_i64(META_WATERMARK, until)?;
        self.cache.set_meta_i64(META_LAST_SYNC, now_ms())?;
        report.watermark_ms = until;
        Ok(report)
    }

    async fn stats(&self) -> Result<Stats> {
        let remote_templates = self
            .call(
                self.config.search_timeout(),
                "count",
                self.remote.count_templates(),
            )
            .await
            .ok();
        Ok(Stats {
            model: self.cache.model_tag().clone(),
            persons: self.cache.person_count(),
            templates: self.cache.template_count(),
            outbox_depth: self.cache.outbox_len(),
            bytes_per_template: self.cache.bytes_per_template(),
            remote: self.remote_state(),
            last_sync_ms: self.cache.meta_i64(META_LAST_SYNC)?,
            remote_templates,
        })
    }

    fn online(&self) -> Option<bool> {
        self.online_now()
    }
}

/// Merge local and remote candidates: one per person (their best score), best first.
fn merge(local: Vec<Match>, remote: Vec<Match>, k: usize) -> Vec<Match> {
    let mut out: Vec<Match> = Vec::new();
    for m in local.into_iter().chain(remote) {
        match out.iter_mut().find(|o| o.person == m.person) {
            Some(o) if m.score > o.score => *o = m,
            Some(_) => {}
            None => out.push(m),
        }
    }
    out.sort_by(|a, b| b.score.total_cmp(&a.score));
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_one_best_per_person() {
        let m = |p: &str, t: u64, s: f32| Match {
            person: p.into(),
            template: t,
            score: s,
        };
        let out = merge(
            vec![m("a", 1, 0.3), m("b", 2, 0.2)],
            vec![m("a", 3, 0.6), m("a", 4, 0.5), m("c", 5, 0.1)],
            2,
        );
        assert_eq!(out, vec![m("a", 3, 0.6), m("b", 2, 0.2)]);
    }
}
