//! Remote unlock of the door, with its audit event.

use crate::access::{Action, NewEvent, Outcome};
use crate::api::door::{DoorControl, DoorError, DoorStatus};

use super::{Source, UseCases};
use crate::app::sink::SinkError;

/// Longest remote unlock asked for, in seconds.
pub const MAX_UNLOCK_S: u32 = 3600;
/// Characters of the reason kept in the audit log.
pub const MAX_REASON_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    #[error("seconds = {0}: use 1-{MAX_UNLOCK_S}")]
    Invalid(u32),
    #[error(transparent)]
    Door(#[from] DoorError),
    /// The door unlocked, but the audit event could not be made durable.
    #[error("audit log: {0}")]
    Record(#[from] SinkError),
}

impl UseCases {
    /// Unlock `door` for `seconds` (its default when `None`), `reason` (cut to
    /// [`MAX_REASON_CHARS`]) going to the audit log with the event.
    pub async fn unlock(
        &self,
        source: Source,
        door: &dyn DoorControl,
        seconds: Option<u32>,
        reason: Option<&str>,
    ) -> Result<DoorStatus, UnlockError> {
        if let Some(s) = seconds
            && !(1..=MAX_UNLOCK_S).contains(&s)
        {
            return Err(UnlockError::Invalid(s));
        }
        let status = door.unlock(seconds).await?;
        tracing::info!(seconds, "remote unlock");
        let mut event = NewEvent::new(Action::Unlock, Outcome::Unlocked, source);
        if let Some(r) = reason {
            event = event.reason(r.chars().take(MAX_REASON_CHARS).collect::<String>());
        }
        self.publish(vec![event])?;
        Ok(status)
    }
}
