//! `[console]`: the web admin console.

use serde::Deserialize;

/// The `[console]` section of the documented default configuration.
pub const DEFAULT_TOML: &str = r#"
[console]
# The web admin console at /console (persons, enrollment, events, door, status), served by
# `facegate serve` and by `facegate run` beside the HTTP API, on its address and with its
# connection limits. Sign in with the admin token (may change things) or the viewer token
# (sees everything, changes nothing). Off: /console answers 404.
enabled = true
# A session ends this many minutes after sign-in (1-10080); sign in again then.
session_minutes = 480
# Sessions open at once at most (1-10000); a sign-in beyond it ends the oldest session.
max_sessions = 64
"#;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    pub enabled: bool,
    pub session_minutes: u64,
    pub max_sessions: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_minutes: 480,
            max_sessions: 64,
        }
    }
}

impl ConsoleConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(1..=10_080).contains(&self.session_minutes) {
            return Err(format!(
                "console.session_minutes = {} is outside 1..10080 (a week)",
                self.session_minutes
            ));
        }
        if !(1..=10_000).contains(&self.max_sessions) {
            return Err(format!(
                "console.max_sessions = {} is outside 1..10000",
                self.max_sessions
            ));
        }
        Ok(())
    }
}
