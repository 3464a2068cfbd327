//! The MQTT unlock command (`mqtt.unlock_command`, off by default): a JSON object
//! `{"action": "UNLOCK", "secret": "..."}` on `<prefix>/lock/set`.
//!
//! The secret is compared in constant time. Every UNLOCK command is audited: refused (no or a
//! wrong secret, a retained message, malformed) or granted; a granted one goes the way the
//! HTTP API's `POST /v1/door/unlock` goes ([`DoorControl::unlock`], then an `unlock` event
//! from the API side; the door thread logs its own `unlocked` door event). After a refusal,
//! commands are ignored for [`REFUSAL_PAUSE`] (counted), so the secret cannot be guessed at
//! network speed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::access::{Action, AuditLog, EventSource, NewEvent, Outcome};
use crate::api::DoorControl;

/// How long commands are ignored after a refused one.
pub const REFUSAL_PAUSE: Duration = Duration::from_secs(1);

/// The largest command payload looked at.
const MAX_PAYLOAD: usize = 4096;

#[derive(Deserialize)]
struct Command {
    action: String,
    #[serde(default)]
    secret: Option<String>,
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Unlocked,
    Refused(String),
    /// LOCK (the door relocks by itself) or a command during the pause after a refusal.
    Ignored(String),
}

/// The unlock command's handler.
pub struct Commands {
    secret: Zeroizing<String>,
    door: Arc<dyn DoorControl>,
    audit: Arc<AuditLog>,
    paused_until: Option<Instant>,
    ignored: u64,
}

impl Commands {
    pub fn new(
        secret: Zeroizing<String>,
        door: Arc<dyn DoorControl>,
        audit: Arc<AuditLog>,
    ) -> Commands {
        Commands {
            secret,
            door,
            audit,
            paused_until: None,
            ignored: 0,
        }
    }

    fn audit(&self, outcome: Outcome, reason: &str) {
        let e = NewEvent::new(Action::Unlock, outcome, EventSource::Api).reason(reason);
        if let Err(e) = self.audit.append(e) {
            tracing::error!(error = %e, "audit log: MQTT unlock command");
        }
    }

    fn refuse(&mut self, why: &str) -> Handled {
        let reason = format!("mqtt unlock command refused: {why}");
        tracing::warn!("{reason}");
        self.audit(Outcome::Denied, &reason);
        self.paused_until = Some(Instant::now() + REFUSAL_PAUSE);
        Handled::Refused(why.to_owned())
    }

    /// Handle one message of the command topic.
    pub async fn handle(&mut self, payload: &[u8], retained: bool) -> Handled {
        if payload.is_empty() {
            // What clearing a retained message on the topic looks like.
            return Handled::Ignored("empty".into());
        }
        if let Some(until) = self.paused_until
            && Instant::now() < until
        {
            self.ignored += 1;
            tracing::warn!(
                ignored_total = self.ignored,
                "mqtt unlock command ignored: too soon after a refused one"
            );
            return Handled::Ignored("too soon after a refused command".into());
        }
        if payload.len() > MAX_PAYLOAD {
            return self.refuse("payload too large");
        }
        let command: Command = match serde_json::from_slice(payload) {
            Ok(c) => c,
            Err(_) => {
                return self
                    .refuse("not a JSON object {\"action\": \"UNLOCK\", \"secret\": \"...\"}");
            }
        };
        let secret = command.secret.map(Zeroizing::new);
        match command.action.as_str() {
            "UNLOCK" | "unlock" => {}
            "LOCK" | "lock" => {
                return Handled::Ignored("the door relocks by itself".into());
            }
            _ => return self.refuse("unknown action"),
        }
        if retained {
            // A retained command would open the door again at every reconnection.
            return self.refuse("a retained message");
        }
        let Some(secret) = secret else {
            return self.refuse("no secret");
        };
        let right: bool = secret.as_bytes().ct_eq(self.secret.as_bytes()).into();
        if !right {
            return self.refuse("wrong secret");
        }
        match self.door.unlock(None).await {
            Ok(_) => {
                tracing::info!("remote unlock (MQTT command)");
                self.audit(Outcome::Unlocked, "mqtt unlock command");
                Handled::Unlocked
            }
            Err(e) => {
                let why = format!("the door refused: {e}");
                self.audit(Outcome::Denied, &format!("mqtt unlock command: {why}"));
                Handled::Refused(why)
            }
        }
    }
}
