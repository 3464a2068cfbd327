//! Events out: every door decision and door event, as JSON, to an MQTT broker (with Home
//! Assistant discovery and an optional, audited unlock command) and to signed webhooks.
//!
//! [`EventsOut`] is one more [`EventSink`] of the door's fan-out. On the records thread it only
//! seals each event into the on-disk queue of each destination ([`queue`]: bounded, oldest
//! dropped and counted) and wakes the destination's task; the network I/O runs in tokio tasks
//! ([`mqtt`], [`webhook`]). The door thread, which drives the relay, never waits for either:
//! it hands records to the records thread through a channel, and the records thread never
//! waits for the network.
//!
//! - [`config`]: the `[mqtt]` and `[webhooks]` sections, and secrets from env or files.
//! - [`payload`]: the event envelope and the retained door state.
//! - [`discovery`]: Home Assistant MQTT discovery configs.
//! - [`command`]: the MQTT unlock command (off by default; secret; audited).

pub mod command;
pub mod config;
pub mod discovery;
pub mod mqtt;
pub mod payload;
pub mod queue;
pub mod webhook;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::access::AuditLog;
use crate::access::audit::AuditError;
use crate::access::daemon::Record;
use crate::api::DoorControl;
use crate::app::sink::EventSink;
use crate::crypto::DeviceKey;
pub use config::{MqttConfig, Secret, WebhooksConfig};
use payload::{DoorState, Envelope};
use queue::{Queue, QueueDb};

/// At exit, how long the queues may take to empty (while the destinations are reachable)
/// before the tasks stop; what is left is sent at the next start.
pub const DRAIN_AT_EXIT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum EventsOutError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    #[error("webhooks: HTTP client: {0}")]
    Http(String),
}

/// What the sinks need from the running door.
pub struct DoorSide {
    /// The door the MQTT unlock command drives (as the HTTP API does).
    pub door: Option<Arc<dyn DoorControl>>,
    /// Where the unlock commands are audited.
    pub audit: Arc<AuditLog>,
}

struct Destination {
    queue: Arc<Queue>,
    wake: Arc<Notify>,
}

/// The MQTT and webhook sink.
pub struct EventsOut {
    db: QueueDb,
    device: String,
    destinations: Vec<Destination>,
    mqtt_state: Option<Arc<mqtt::Shared>>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    rt: tokio::runtime::Handle,
    failed: u64,
}

fn resolve_secret(
    s: &Secret,
    key: &str,
    min: usize,
) -> Result<zeroize::Zeroizing<String>, EventsOutError> {
    let v = s.resolve(key).map_err(EventsOutError::Config)?;
    if v.chars().count() < min {
        return Err(EventsOutError::Config(format!(
            "{key}: at least {min} characters are needed"
        )));
    }
    Ok(v)
}

/// Whether any destination is configured.
pub fn configured(mqtt: &MqttConfig, webhooks: &WebhooksConfig) -> bool {
    mqtt.enabled || !webhooks.urls.is_empty()
}

impl EventsOut {
    /// Open the queue at `queue_dir` and start the configured destinations' tasks on `rt`.
    /// Secrets are resolved here: a missing one stops the start with its setting's name.
    pub fn start(
        mqtt_config: &MqttConfig,
        webhooks: &WebhooksConfig,
        queue_dir: &Path,
        device_key: &DeviceKey,
        rt: &tokio::runtime::Handle,
        door: DoorSide,
    ) -> Result<EventsOut, EventsOutError> {
        // Everything that can be refused is checked before anything starts.
        let password = if mqtt_config.enabled && !mqtt_config.password.is_empty() {
            Some(resolve_secret(&mqtt_config.password, "mqtt.password", 1)?)
        } else {
            None
        };
        let unlock_secret = if mqtt_config.enabled && mqtt_config.unlock_command {
            Some(resolve_secret(
                &mqtt_config.unlock_secret,
                "mqtt.unlock_secret",
                config::MIN_SECRET_CHARS,
            )?)
        } else {
            None
        };
        let hook_secret = if webhooks.urls.is_empty() {
            None
        } else {
            Some(Arc::new(resolve_secret(
                &webhooks.secret,
                "webhooks.secret",
                config::MIN_SECRET_CHARS,
            )?))
        };
        let options = if mqtt_config.enabled {
            Some(mqtt::options(mqtt_config, password)?)
        } else {
            None
        };

        let db = QueueDb::open(queue_dir, device_key)?;
        let mut names = Vec::new();
        if mqtt_config.enabled {
            names.push("mqtt".to_owned());
        }
        names.extend(webhooks.urls.iter().map(|u| format!("webhook {u}")));
        db.forget_others(&names)?;

        let stop = CancellationToken::new();
        let mut out = EventsOut {
            db: db.clone(),
            device: mqtt_config.device_id.clone(),
            destinations: Vec::new(),
            mqtt_state: None,
            stop: stop.clone(),
            tasks: Vec::new(),
            rt: rt.clone(),
            failed: 0,
        };
        let has_door = door.door.is_some();
        if let Some(options) = options {
            let queue = db.queue("mqtt", mqtt_config.queue_max_events)?;
            let shared = Arc::new(mqtt::Shared {
                // Without a door (`facegate serve`) there is no lock state to keep.
                state: Mutex::new(if has_door {
                    DoorState::started()
                } else {
                    DoorState::default()
                }),
                notify: Arc::new(Notify::new()),
            });
            let commands = match (unlock_secret, door.door) {
                (Some(secret), Some(d)) => {
                    Some(command::Commands::new(secret, d, Arc::clone(&door.audit)))
                }
                (Some(_), None) => {
                    tracing::warn!(
                        "mqtt.unlock_command is set, but there is no door here (facegate serve): \
                         no unlock command is accepted"
                    );
                    None
                }
                _ => None,
            };
            if mqtt_config.discovery && !has_door {
                tracing::info!(
                    "events out: no door here (facegate serve): no Home Assistant entities are \
                     announced; events and availability are published"
                );
            }
            let (client, eventloop) = rumqttc::AsyncClient::new(options, 16);
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            out.tasks.push(rt.spawn(mqtt::poll(eventloop, tx)));
            let publisher = mqtt::Publisher {
                client,
                config: mqtt_config.clone(),
                queue: Arc::clone(&queue),
                shared: Arc::clone(&shared),
                commands,
                has_door,
                stop: stop.clone(),
            };
            out.tasks.push(rt.spawn(publisher.run(rx)));
            // The publisher wakes for a new event and for a changed state alike.
            out.destinations.push(Destination {
                queue,
                wake: Arc::clone(&shared.notify),
            });
            out.mqtt_state = Some(shared);
            tracing::info!(
                url = %mqtt_config.url,
                prefix = %mqtt_config.topic_prefix,
                discovery = mqtt_config.discovery,
                unlock_command = mqtt_config.unlock_command,
                "events out: MQTT"
            );
        }
        if let Some(secret) = hook_secret {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(webhooks.timeout_ms))
                .user_agent(concat!("facegate/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| EventsOutError::Http(e.to_string()))?;
            for url in &webhooks.urls {
                let queue = db.queue(&format!("webhook {url}"), webhooks.queue_max_events)?;
                let wake = Arc::new(Notify::new());
                let d = webhook::Deliverer {
                    url: url.clone(),
                    client: client.clone(),
                    secret: Arc::clone(&secret),
                    queue: Arc::clone(&queue),
                    notify: Arc::clone(&wake),
                    config: webhooks.clone(),
                    stop: stop.clone(),
                };
                out.tasks.push(rt.spawn(d.run()));
                out.destinations.push(Destination { queue, wake });
            }
            tracing::info!(urls = webhooks.urls.len(), "events out: webhooks");
        }
        Ok(out)
    }

    /// Events waiting, summed over the destinations.
    pub fn queued(&self) -> usize {
        self.destinations.iter().map(|d| d.queue.len()).sum()
    }
}

impl EventSink for EventsOut {
    fn record(&mut self, r: &Record) {
        if let Some(shared) = &self.mqtt_state {
            let changed = shared
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .apply(r);
            if changed {
                shared.notify.notify_one();
            }
        }
        let queued = self.db.next_seq().and_then(|seq| {
            let json = serde_json::to_vec(&Envelope {
                seq,
                device: &self.device,
                record: r,
            })
            .map_err(|e| queue::QueueError::Open(e.to_string()))?;
            for d in &self.destinations {
                d.queue.push(seq, &json)?;
                d.wake.notify_one();
            }
            Ok(())
        });
        if let Err(e) = queued {
            self.failed += 1;
            tracing::error!(error = %e, failed_total = self.failed, "events out: event not queued");
        }
    }

    /// Write the queues to disk, give the destinations [`DRAIN_AT_EXIT`] to take what is
    /// queued, then stop the tasks.
    fn flush(&mut self) -> Result<(), AuditError> {
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "events out: queue not flushed");
        }
        let deadline = Instant::now() + DRAIN_AT_EXIT;
        while self.queued() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = self.queued();
        if left > 0 {
            tracing::warn!(
                queued = left,
                "events out: not delivered at exit; kept on disk for the next start"
            );
        }
        self.stop.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
        let joined = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), async {
                for t in tasks {
                    let _ = t.await;
                }
            })
            .await
        });
        if joined.is_err() {
            for a in aborts {
                a.abort();
            }
        }
        if let Err(e) = self.db.flush() {
            tracing::error!(error = %e, "events out: queue not flushed");
        }
        Ok(())
    }
}
