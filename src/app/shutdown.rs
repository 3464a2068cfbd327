//! One shutdown signal for the whole process.
//!
//! SIGINT (Ctrl-C) and SIGTERM (`systemctl stop`) are handled the same way: the first one
//! cancels one [`CancellationToken`], and every task and thread that must stop in order (the
//! HTTP server's graceful shutdown, the door's threads, the audit writer) learns it from a
//! clone of that token. A second signal while stopping does not cut the stop short: the relay
//! is driven locked and the audit log flushed first (systemd's `TimeoutStopSec` and SIGKILL
//! remain the way to force it).

use std::sync::Arc;
use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;

/// Why the process is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (`systemctl stop`, `kill`).
    Terminate,
    /// The program decided to stop (a replayed camera ran out of frames).
    Finished,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Interrupt => "SIGINT",
            StopReason::Terminate => "SIGTERM",
            StopReason::Finished => "finished",
        }
    }
}

/// The shutdown signal: cheap to clone, every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    reason: Arc<OnceLock<StopReason>>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Start stopping (the first reason given is kept).
    pub fn trigger(&self, reason: StopReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    /// Whether stopping has begun (for threads that poll).
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Why, once triggered.
    pub fn reason(&self) -> Option<StopReason> {
        self.reason.get().copied()
    }

    /// Completes when stopping begins (for tasks).
    pub async fn wait(&self) {
        self.token.cancelled().await
    }

    /// A future that completes when stopping begins, owning its clone of the token (for
    /// `axum::serve`-style graceful shutdown arguments).
    pub fn wait_owned(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// The token itself, for code that takes a [`CancellationToken`].
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Handle SIGINT and SIGTERM from now on: the first triggers this shutdown; later ones are
    /// only acknowledged (stopping locks the door first). Call inside a tokio runtime (it
    /// spawns the listening task).
    pub fn listen_for_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let reason = tokio::select! {
                    _ = int.recv() => StopReason::Interrupt,
                    _ = term.recv() => StopReason::Terminate,
                };
                if me.is_triggered() {
                    eprintln!(
                        "facegate: {} while stopping: still locking the door and writing the \
                         audit log (SIGKILL forces it, leaving the relay as it is)",
                        reason.as_str()
                    );
                    continue;
                }
                tracing::info!(signal = reason.as_str(), "stopping");
                me.trigger(reason);
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_the_first_reason() {
        let s = Shutdown::new();
        let c = s.clone();
        assert!(!c.is_triggered() && c.reason().is_none());
        s.trigger(StopReason::Terminate);
        s.trigger(StopReason::Interrupt);
        assert!(c.is_triggered());
        assert_eq!(c.reason(), Some(StopReason::Terminate));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(1), c.wait_owned())
                .await
                .expect("already triggered: completes at once");
        });
    }
}
