//! One observation against the gallery: search it, recognise, look up the recognised person's
//! record, decide ([`super::decision::decide`]). The door (the fused face of a visit) and the
//! identify use-case (one face of a photo, `crate::app::usecases`) both call [`observe`], so
//! the same face against the same gallery gets the same decision and the same reason.

use super::decision::{self, Decision, Rule};
use super::rules::LocalTime;
use crate::gallery::{Gallery, GalleryError, Identification, Person};

/// What one observation came to.
#[derive(Debug, Clone)]
pub struct Observed {
    pub decision: Decision,
    /// The recognised person's record, when the candidates name someone and the record exists.
    pub record: Option<Person>,
    /// The gallery's answer (candidates, one per person, best first; where it came from).
    pub found: Identification,
}

/// Search the gallery for `embedding` (at least two candidates, for the margin rule), then
/// decide with `rule` at `now_ms` (the person's rules in the local time of `now_ms`).
pub async fn observe(
    gallery: &dyn Gallery,
    embedding: &[f32],
    top_k: usize,
    rule: &Rule,
    now_ms: i64,
) -> Result<Observed, GalleryError> {
    let found = gallery.identify(embedding, top_k.max(2)).await?;
    let record = match decision::recognise(&found.candidates, rule) {
        Ok(m) => gallery.person(&m.person).await?,
        Err(_) => None,
    };
    let decision = decision::decide(
        &found.candidates,
        rule,
        &decision::Context {
            record: record.as_ref(),
            offline: found.refuse.as_deref(),
            now_ms,
            local: LocalTime::at(now_ms),
        },
    );
    Ok(Observed {
        decision,
        record,
        found,
    })
}
