//! What the API needs from a door. The door state machine (issue #5) will implement this; the
//! central enrollment server (`facegate serve`) has no door, and its door routes answer 404.

use async_trait::async_trait;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum DoorError {
    /// The door refused the command (e.g. held in lockdown); the message says why.
    #[error("{0}")]
    Refused(String),
    /// The door hardware or its controller failed.
    #[error("door controller failed: {0}")]
    Failed(String),
}

/// The door as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoorStatus {
    /// A short state name from the door state machine (e.g. "locked", "unlocked").
    pub state: String,
    /// Whether the relay is energised (the door can be opened).
    pub unlocked: bool,
    /// Until when (Unix ms) an unlock lasts, if one is running.
    pub unlocked_until_ms: Option<i64>,
    /// Door contact, when the door has one: true when open.
    pub open: Option<bool>,
}

#[async_trait]
pub trait DoorControl: Send + Sync {
    async fn status(&self) -> Result<DoorStatus, DoorError>;
    /// Unlock for `seconds` (the door's configured default when `None`).
    async fn unlock(&self, seconds: Option<u32>) -> Result<DoorStatus, DoorError>;
}
