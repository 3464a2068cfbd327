//! The door application (`facegate run`): the door daemon, its HTTP API when configured, the
//! records thread feeding the event sinks, systemd's watchdog, and the ordered stop.
//!
//! Stopping, in order: tell systemd `STOPPING=1`; let the API finish its running requests (no
//! new remote unlocks; [`API_STOP_TIMEOUT`] at most); stop the door's threads (the door thread
//! drives the relay locked last); the records thread then writes what is left to every sink
//! and flushes the audit log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use tokio_rustls::rustls::ServerConfig;

use super::sink::JsonLines;
use super::{App, StopReason};
use crate::access::audit::AuditError;
use crate::access::daemon::{self, DaemonConfig, DaemonError};
use crate::camera::{FrameSource, StatusWatch};
use crate::config::Config;
use crate::host::systemd;
use crate::hw::Hardware;

/// How long the HTTP API may take to finish its requests once stopping.
pub const API_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DoorAppError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error("the HTTP API: {0}")]
    Api(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the records thread: {0}")]
    Thread(std::io::Error),
    #[error("the records thread panicked")]
    RecordsPanicked,
    #[error("flushing the audit log at exit: {0}")]
    Flush(#[from] AuditError),
    #[error("events out (MQTT, webhooks): {0}")]
    EventsOut(#[from] crate::events_out::EventsOutError),
}

/// Where the door's HTTP API listens.
pub struct ApiListen {
    pub addr: SocketAddr,
    pub tls: Option<Arc<ServerConfig>>,
}

/// A running door application.
pub struct DoorApp {
    running: daemon::Running,
    api: Option<tokio::task::JoinHandle<()>>,
    records: std::thread::JoinHandle<Result<(), AuditError>>,
    shutdown: super::Shutdown,
    unlock_ms: u64,
}

impl DoorApp {
    /// Start the door on `hardware` and `camera` (its status in `camera_status`) and, with
    /// `api`, its HTTP API; tell systemd it is ready. `rt` runs the gallery's and the API's
    /// async work.
    #[allow(clippy::too_many_arguments)]
    pub fn start<S: FrameSource + 'static>(
        app: &App,
        config: &Config,
        rt: &tokio::runtime::Runtime,
        hardware: Hardware,
        camera: S,
        camera_status: StatusWatch,
        api: Option<ApiListen>,
    ) -> Result<DoorApp, DoorAppError> {
        let unlock_ms = u64::from(hardware.unlock_ms);
        let (tx, rx) = mpsc::channel();
        let running = daemon::start_with_ir(
            &app.models,
            config.vision.params(),
            Arc::clone(&app.gallery.gallery),
            rt.handle().clone(),
            hardware,
            camera,
            Some(camera_status),
            DaemonConfig {
                policy: config.access.policy(app.threshold),
                operating: Arc::clone(&app.visit_rule),
                door: config.access.door(unlock_ms),
                top_k: config.gallery.top_k,
                display_hold_ms: 2000,
                workers: config.access.worker_count(),
                save_face_crops: config.access.save_face_crops,
                track: config.access.track(),
            },
            daemon::IrCamera::from_config(config),
            tx,
        )?;
        let door: Arc<dyn crate::api::DoorControl> = Arc::new(running.door());
        let events_out = super::events_out_sink(app, config, rt, Some(Arc::clone(&door)))?;
        let api = match api {
            None => None,
            Some(ApiListen { addr, tls }) => {
                let api = crate::api::Api::new(
                    &config.api,
                    app.api_parts(config, Some(Arc::clone(&door))),
                )
                .map_err(|e| DoorAppError::Api(e.to_string()))?
                .with_space_guard(app.space_guard())
                .with_sinks(app.sinks.clone())
                .with_console(&config.console, tls.is_some())
                .map_err(|e| DoorAppError::Api(e.to_string()))?;
                let listener = rt
                    .block_on(tokio::net::TcpListener::bind(addr))
                    .map_err(|source| DoorAppError::Listen { addr, source })?;
                let stop = app.shutdown.wait_owned();
                Some(rt.spawn(async move {
                    if let Err(e) = crate::api::serve(listener, tls, Arc::new(api), stop).await {
                        tracing::error!(error = %e, "HTTP API stopped");
                    }
                }))
            }
        };
        // Every record to every sink: the audit log (the application's fan-out, which the
        // API's use-cases publish to as well), the JSON lines on stdout, and MQTT and webhooks
        // when configured.
        app.sinks.add(JsonLines(std::io::stdout()));
        if let Some(out) = events_out {
            app.sinks.add(out);
        }
        let sinks = app.sinks.clone();
        let records = std::thread::Builder::new()
            .name("records".into())
            .spawn(move || sinks.drain(&rx))
            .map_err(DoorAppError::Thread)?;
        // systemd (Type=notify): ready now; the watchdog is fed while the decision thread lives.
        if let Err(e) = systemd::notify_ready() {
            tracing::warn!(error = %e, "sd_notify");
        }
        Ok(DoorApp {
            running,
            api,
            records,
            shutdown: app.shutdown.clone(),
            unlock_ms,
        })
    }

    /// Run until the shutdown signal, or until a replayed camera has no more frames (then the
    /// door gets `unlock_ms` to relock on time). `tick` is called every 200 ms meanwhile.
    pub fn wait(&self, rt: &tokio::runtime::Runtime, mut tick: impl FnMut()) {
        let shutdown = &self.shutdown;
        rt.block_on(async {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        tick();
                        if !self.running.camera_finished() {
                            if let Err(e) = systemd::notify_watchdog() {
                                tracing::warn!(error = %e, "sd_notify");
                            }
                            continue;
                        }
                        // Let a door opened by the last frames relock on time.
                        let relock = Duration::from_millis(self.unlock_ms + 100);
                        tokio::select! {
                            _ = shutdown.wait() => {}
                            _ = tokio::time::sleep(relock) => shutdown.trigger(StopReason::Finished),
                        }
                        break;
                    }
                }
            }
        });
    }

    /// Stop in order (see the module documentation).
    pub fn stop(self, rt: &tokio::runtime::Runtime) -> Result<(), DoorAppError> {
        if let Err(e) = systemd::notify_stopping() {
            tracing::warn!(error = %e, "sd_notify");
        }
        if let Some(task) = self.api {
            let waited = rt.block_on(async { tokio::time::timeout(API_STOP_TIMEOUT, task).await });
            if waited.is_err() {
                tracing::warn!("HTTP API requests still running after the stop timeout; dropped");
            }
        }
        self.running.stop();
        self.records
            .join()
            .map_err(|_| DoorAppError::RecordsPanicked)??;
        Ok(())
    }
}
