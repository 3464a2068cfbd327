//! Removal: a person with all their face templates, or one face template.

use crate::access::{Action, NewEvent, Outcome};
use crate::gallery::{GalleryError, Removed};

use super::{Source, UseCaseError, UseCases};

impl UseCases {
    /// Remove a person and all their face templates (cache, central gallery, outbox), with
    /// its audit event. [`UseCaseError::NoPerson`] when there is no such person.
    pub async fn remove_person(&self, source: Source, id: &str) -> Result<Removed, UseCaseError> {
        let removed = match self.gallery.delete_person(id).await {
            Err(GalleryError::UnknownPerson(_)) => {
                return Err(UseCaseError::NoPerson(id.to_owned()));
            }
            r => r?,
        };
        if removed.persons == 0 && removed.templates == 0 {
            return Err(UseCaseError::NoPerson(id.to_owned()));
        }
        tracing::info!(person = %id, templates = removed.templates, "person deleted");
        self.publish(vec![
            NewEvent::new(Action::DeletePerson, Outcome::Deleted, source)
                .person(id)
                .reason(format!("{} face template(s) removed", removed.templates)),
        ])?;
        Ok(removed)
    }

    /// Remove one face template, with its audit event. A template not in the local gallery
    /// is still queued for deletion in the central gallery (`templates` is 0 then).
    pub async fn remove_face(
        &self,
        source: Source,
        template: u64,
    ) -> Result<Removed, UseCaseError> {
        let removed = self.gallery.delete_template(template).await?;
        tracing::info!(template, removed = removed.templates, "face deleted");
        self.publish(vec![
            NewEvent::new(Action::DeleteFace, Outcome::Deleted, source)
                .template(template)
                .reason(format!("{} face template(s) removed", removed.templates)),
        ])?;
        Ok(removed)
    }
}
