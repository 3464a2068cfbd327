//! The camera's state as the display shows it, watched from any thread.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::camera::lock;

/// The state of a camera, as the display shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraStatus {
    /// Not opened yet.
    Starting,
    /// Frames are arriving from `source`.
    Streaming { source: String },
    /// The camera failed or could not be opened; the next attempt is `retry_in` after this
    /// status was set.
    Lost {
        reason: String,
        /// Failed attempts since frames last arrived.
        attempts: u32,
        retry_in: Duration,
    },
    /// The source is finished for good (a replay that does not loop).
    Ended { reason: String },
    /// A configuration error ([`CameraError::is_permanent`]): not retried. `reason` says
    /// what is wrong, `advice` what to change.
    Misconfigured { reason: String, advice: String },
    /// Capture was stopped.
    Stopped,
}

impl CameraStatus {
    pub fn is_streaming(&self) -> bool {
        matches!(self, CameraStatus::Streaming { .. })
    }

    pub fn is_lost(&self) -> bool {
        matches!(self, CameraStatus::Lost { .. })
    }

    pub fn is_misconfigured(&self) -> bool {
        matches!(self, CameraStatus::Misconfigured { .. })
    }

    /// A short line for a small display.
    pub fn headline(&self) -> String {
        match self {
            CameraStatus::Starting => "Camera starting".into(),
            CameraStatus::Streaming { .. } => "Camera OK".into(),
            CameraStatus::Lost { retry_in, .. } => {
                format!("Camera lost - retrying in {} s", retry_in.as_secs().max(1))
            }
            CameraStatus::Ended { .. } => "Camera stopped".into(),
            CameraStatus::Misconfigured { .. } => "Camera misconfigured".into(),
            CameraStatus::Stopped => "Camera off".into(),
        }
    }
}

/// The current [`CameraStatus`], readable from any thread; a version number counts changes.
#[derive(Debug, Clone)]
pub struct StatusWatch {
    inner: Arc<(Mutex<(u64, CameraStatus)>, Condvar)>,
}

impl Default for StatusWatch {
    fn default() -> Self {
        StatusWatch {
            inner: Arc::new((Mutex::new((0, CameraStatus::Starting)), Condvar::new())),
        }
    }
}

impl StatusWatch {
    pub fn get(&self) -> CameraStatus {
        lock(&self.inner.0).1.clone()
    }

    /// The status and its version (incremented on every change).
    pub fn versioned(&self) -> (u64, CameraStatus) {
        lock(&self.inner.0).clone()
    }

    /// Wait until the version is past `seen`, up to `timeout`; the new version and status,
    /// or `None` on timeout.
    pub fn wait_change(&self, seen: u64, timeout: Duration) -> Option<(u64, CameraStatus)> {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.inner.0);
        while g.0 <= seen {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            g = self
                .inner
                .1
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        Some(g.clone())
    }

    pub(super) fn set(&self, status: CameraStatus) {
        let mut g = lock(&self.inner.0);
        if g.1 != status {
            g.0 += 1;
            g.1 = status;
            self.inner.1.notify_all();
        }
    }
}
