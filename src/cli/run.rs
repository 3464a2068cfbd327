//! `facegate run`: the door daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::{Context, Result};
use facegate::access::daemon::{self, DaemonConfig};
use facegate::app::StopReason;
use facegate::app::sink::{AuditSink, FanOut, JsonLines};
use facegate::camera::{CameraStatus, Reopening};
use facegate::config::Config;
use facegate::hw;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Replay this folder of images as the camera (overrides [camera]).
    #[arg(long, value_name = "DIR")]
    pub frames: Option<PathBuf>,
    /// Replay the frames once and exit (default: loop, as configured).
    #[arg(long)]
    pub once: bool,
    /// Drive in-memory pins and write the status display to this PNG instead of [hw]
    /// (for trying facegate on a machine without GPIO).
    #[arg(long, value_name = "PNG")]
    pub no_hardware: Option<PathBuf>,
}

pub fn run(config: &Config, args: RunArgs) -> Result<ExitCode> {
    let mut cam = config.camera.clone();
    if let Some(dir) = &args.frames {
        cam.source = facegate::camera::SourceKind::Recorded;
        cam.recorded_dir = dir.clone();
    }
    if args.once {
        cam.recorded_loop = false;
    }
    cam.check().map_err(anyhow::Error::msg)?;
    // Opened now, so that a configuration error stops the start-up with its reason; a camera
    // that is only missing (unplugged, unreachable) is retried in the background.
    let mut camera = Reopening::from_config(&cam);
    match camera.open_now() {
        Ok(None) => {}
        Ok(Some(e)) => eprintln!(
            "facegate: camera not available yet ({e}); retrying in the background, the \
             display says the camera is lost. {}",
            e.advice()
        ),
        Err(e) => {
            let advice = if args.frames.is_some() {
                "check the folder given to --frames".to_string()
            } else {
                e.advice()
            };
            anyhow::bail!("the camera is misconfigured: {e}. To fix: {advice}");
        }
    }
    let camera_status = camera.status();

    let app = super::open_app(config)?;
    let shutdown = app.shutdown.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    {
        let _guard = rt.enter();
        shutdown
            .listen_for_signals()
            .context("installing the SIGINT/SIGTERM handlers")?;
    }
    let _sync = app.gallery.tiered.as_ref().map(|t| {
        let _guard = rt.enter();
        t.spawn_sync()
    });

    let (hardware, memory) = match &args.no_hardware {
        Some(png) => {
            let mut h = config.hw.clone();
            h.display = hw::config::DisplayKind::Png;
            h.png_path = png.clone();
            let (hardware, memory) = hw::Hardware::memory(&h)?;
            (hardware, Some(memory))
        }
        None => (
            hw::open_from_config(&config.hw).context(
                "opening the door hardware ([hw] in the config; a board profile from board/ sets \
                 it up). On a machine without GPIO, try `facegate run --no-hardware status.png`",
            )?,
            None,
        ),
    };
    let unlock_ms = u64::from(hardware.unlock_ms);
    let (tx, rx) = mpsc::channel();
    let running = daemon::start(
        &app.models,
        config.vision.params(),
        Arc::clone(&app.gallery.gallery),
        rt.handle().clone(),
        hardware,
        camera,
        Some(camera_status.clone()),
        DaemonConfig {
            policy: config.access.policy(app.threshold),
            door: config.access.door(unlock_ms),
            top_k: config.gallery.top_k,
            display_hold_ms: 2000,
            workers: config.access.worker_count(),
            save_face_crops: config.access.save_face_crops,
        },
        tx,
    )?;
    eprintln!(
        "facegate: door running (gallery {}, {} templates); Ctrl-C or SIGTERM to stop",
        app.gallery.cache.path().display(),
        app.gallery.cache.template_count()
    );
    if config.access.save_face_crops {
        eprintln!(
            "facegate: saving face crops with door decisions (kept {} days, at most {})",
            config.access.face_crop_retention_days, config.access.face_crop_max
        );
    }
    // The HTTP API, with this door attached, when an admin token is configured.
    let api_task = if config.api.admin_token_sha256.is_empty() {
        eprintln!(
            "facegate: no HTTP API (api.admin_token_sha256 is empty; `facegate init` sets one up)"
        );
        None
    } else {
        let addr = config.api.listen_addr().map_err(anyhow::Error::msg)?;
        let tls = config
            .api
            .tls()
            .map(|(cert, key)| facegate::api::tls::server_config(cert, key))
            .transpose()?;
        let api = facegate::api::Api::new(
            &config.api,
            app.api_parts(config, Some(Arc::new(running.door()))),
        )?
        .with_space_guard(app.space_guard());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("listening on {addr}"))?;
        eprintln!("facegate: HTTP API on {addr}/v1, door attached");
        let stop = shutdown.wait_owned();
        Some(rt.spawn(async move {
            if let Err(e) = facegate::api::serve(listener, tls, Arc::new(api), stop).await {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        }))
    };
    // Every record to every sink: the JSON lines on stdout and the audit log.
    let sinks = FanOut::new()
        .with(JsonLines(std::io::stdout()))
        .with(AuditSink::new(Arc::clone(&app.audit), app.space_guard()));
    let log = std::thread::Builder::new()
        .name("records".into())
        .spawn(move || sinks.drain(&rx))
        .context("starting the audit thread")?;
    // systemd (Type=notify): ready now; the watchdog is fed while the decision thread lives.
    if let Err(e) = hw::systemd::notify_ready() {
        tracing::warn!(error = %e, "sd_notify");
    }
    let mut told_misconfigured = false;
    rt.block_on(async {
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    if !told_misconfigured
                        && let CameraStatus::Misconfigured { reason, advice } = camera_status.get()
                    {
                        // The door (exit button, remote unlock) keeps working without faces.
                        eprintln!(
                            "facegate: the camera is misconfigured and is not retried: {reason}. \
                             To fix: {advice}, then restart facegate. The door keeps working \
                             (exit button, API); faces are not recognised until then."
                        );
                        told_misconfigured = true;
                    }
                    if !running.camera_finished()
                        && let Err(e) = hw::systemd::notify_watchdog()
                    {
                        tracing::warn!(error = %e, "sd_notify");
                    }
                    if running.camera_finished() {
                        // Let a door opened by the last frames relock on time.
                        tokio::select! {
                            _ = shutdown.wait() => {}
                            _ = tokio::time::sleep(std::time::Duration::from_millis(unlock_ms + 100)) => {
                                shutdown.trigger(StopReason::Finished);
                            }
                        }
                        break;
                    }
                }
            }
        }
    });
    // Stopping, in order: tell systemd; let the API finish its requests (no new remote
    // unlocks); stop the door (its thread drives the relay locked last); the audit thread
    // then writes what is left and flushes the log.
    let reason = shutdown.reason().unwrap_or(StopReason::Finished);
    eprintln!("facegate: stopping ({})", reason.as_str());
    if let Err(e) = hw::systemd::notify_stopping() {
        tracing::warn!(error = %e, "sd_notify");
    }
    if let Some(task) = api_task {
        let waited = rt.block_on(async { tokio::time::timeout(API_STOP_TIMEOUT, task).await });
        if waited.is_err() {
            tracing::warn!("HTTP API requests still running after the stop timeout; dropped");
        }
    }
    running.stop();
    let flushed = log
        .join()
        .map_err(|_| anyhow::anyhow!("the records thread panicked"))?;
    if let Some(memory) = &memory {
        if memory.relay_unlocked() {
            eprintln!("facegate: stopped; the relay is UNLOCKED (a fault: report it)");
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("facegate: stopped; relay at its locked level");
    } else {
        // The door thread drove the relay locked as it stopped (a failure is logged above).
        eprintln!("facegate: stopped");
    }
    match flushed {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(anyhow::Error::new(e).context("flushing the audit log at exit")),
    }
}

/// How long the HTTP API may take to finish its requests once stopping.
const API_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
