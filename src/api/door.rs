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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DoorStatus {
    /// A short state name from the door state machine (e.g. "locked", "unlocked").
    pub state: String,
    /// Whether the relay is energised (the door can be opened).
    pub unlocked: bool,
    /// Until when (Unix ms) an unlock lasts, if one is running.
    pub unlocked_until_ms: Option<i64>,
    /// Door contact, when the door has one: true when open.
    pub open: Option<bool>,
    /// Frames the door looks at per second (a moving average over about the last 10 frames;
    /// 0 when it looked at none in the last 5 s: camera lost or stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames_per_s: Option<f64>,
}

#[async_trait]
pub trait DoorControl: Send + Sync {
    async fn status(&self) -> Result<DoorStatus, DoorError>;
    /// Unlock for `seconds` (the door's configured default when `None`).
    async fn unlock(&self, seconds: Option<u32>) -> Result<DoorStatus, DoorError>;
    /// The door camera's view, for enrolling a person at the door (`None`: no camera).
    fn camera_view(&self) -> Option<std::sync::Arc<crate::access::camera_view::CameraView>> {
        None
    }
}

/// The running door daemon (`facegate run`) as the API drives it.
#[async_trait]
impl DoorControl for crate::access::daemon::DoorHandle {
    async fn status(&self) -> Result<DoorStatus, DoorError> {
        Ok(door_status(self))
    }

    /// The daemon unlocks for its configured `hw.unlock_ms`; `seconds` is not supported yet.
    async fn unlock(&self, seconds: Option<u32>) -> Result<DoorStatus, DoorError> {
        if seconds.is_some() {
            return Err(DoorError::Refused(
                "this door unlocks for its configured hw.unlock_ms; omit `seconds`".into(),
            ));
        }
        if !self.unlock_remote() {
            return Err(DoorError::Failed("the door loop has stopped".into()));
        }
        // Let the door thread take the command (it polls every 10 ms).
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        Ok(door_status(self))
    }

    fn camera_view(&self) -> Option<std::sync::Arc<crate::access::camera_view::CameraView>> {
        Some(crate::access::daemon::DoorHandle::camera_view(self))
    }
}

fn door_status(door: &crate::access::daemon::DoorHandle) -> DoorStatus {
    use crate::access::door::LockState;
    let s = door.status();
    let unlocked = s.lock == LockState::Unlocked;
    DoorStatus {
        state: if s.forced {
            "forced".into()
        } else if s.held_open_alarm {
            "held_open".into()
        } else if unlocked {
            "unlocked".into()
        } else {
            "locked".into()
        },
        unlocked,
        unlocked_until_ms: None,
        open: s.open,
        frames_per_s: Some((door.frames_per_second() * 10.0).round() / 10.0),
    }
}
