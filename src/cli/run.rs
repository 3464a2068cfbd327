//! `facegate run`: the door daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::{Context, Result};
use facegate::access::daemon::{self, DaemonConfig};
use facegate::camera::{CameraStatus, Reopening};
use facegate::config::Config;
use facegate::gallery::{self, ModelTag};
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

/// How often the log thread applies the face crop retention when no event comes.
const CROP_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

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

    let models = crate::load_models(config, None)?;
    let threshold = crate::threshold(config, &models)?;
    let model = ModelTag::new(&models.embedder.name, models.dim());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let opened = gallery::open(&config.gallery, &config.milvus, &model, threshold)
        .with_context(|| format!("opening the gallery at {}", config.gallery.path().display()))?;
    let _sync = opened.tiered.as_ref().map(|t| {
        let _guard = rt.enter();
        t.spawn_sync()
    });

    let (hardware, _memory) = match &args.no_hardware {
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
    use facegate::access::calibration::ProbeKind;
    let visit_op = crate::operating_point(config, &models, ProbeKind::Visit, &opened.cache)?;
    let image_op = crate::operating_point(config, &models, ProbeKind::Image, &opened.cache)?;
    let op = visit_op.state();
    eprintln!(
        "facegate: recognition threshold {:.4} for a visit ({} templates{})",
        op.threshold,
        op.templates,
        op.target_fpir
            .map(|f| format!(", target FPIR {f:e}"))
            .unwrap_or_else(|| ", fixed by recognition.threshold".into())
    );
    let (tx, rx) = mpsc::channel();
    let running = daemon::start(
        &models,
        config.vision.params(),
        Arc::clone(&opened.gallery),
        rt.handle().clone(),
        hardware,
        camera,
        Some(camera_status.clone()),
        DaemonConfig {
            policy: config.access.policy(threshold),
            operating: visit_op,
            door: config.access.door(unlock_ms),
            top_k: config.gallery.top_k,
            display_hold_ms: 2000,
            workers: config.access.worker_count(),
            save_face_crops: config.access.save_face_crops,
        },
        tx,
    )?;
    eprintln!(
        "facegate: door running (gallery {}, {} templates); Ctrl-C to stop",
        opened.cache.path().display(),
        opened.cache.template_count()
    );
    let audit_path = config.api.audit_path(opened.cache.path());
    let audit = Arc::new(
        facegate::access::AuditLog::open(&audit_path, config.api.audit_max_events)
            .and_then(|log| log.with_crop_retention(config.access.crop_retention()))
            .with_context(|| format!("opening the audit log at {}", audit_path.display()))?,
    );
    if config.access.save_face_crops {
        eprintln!(
            "facegate: saving face crops with door decisions (kept {} days, at most {})",
            config.access.face_crop_retention_days, config.access.face_crop_max
        );
    }
    // The HTTP API, with this door attached, when an admin token is configured.
    if config.api.admin_token_sha256.is_empty() {
        eprintln!(
            "facegate: no HTTP API (api.admin_token_sha256 is empty; `facegate init` sets one up)"
        );
    } else {
        let addr = config.api.listen_addr().map_err(anyhow::Error::msg)?;
        let tls = config
            .api
            .tls()
            .map(|(cert, key)| facegate::api::tls::server_config(cert, key))
            .transpose()?;
        let api = facegate::api::Api::new(
            &config.api,
            facegate::api::ApiParts {
                gallery: Arc::clone(&opened.gallery),
                audit: Arc::clone(&audit),
                models: Arc::new(models),
                vision: config.vision.params(),
                threshold,
                operating: image_op,
                top_k: config.gallery.top_k,
                max_image_pixels: config.vision.max_image_pixels,
                door: Some(Arc::new(running.door())),
            },
        )?;
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("listening on {addr}"))?;
        eprintln!("facegate: HTTP API on {addr}/v1, door attached");
        rt.spawn(async move {
            let never = std::future::pending::<()>();
            if let Err(e) = facegate::api::serve(listener, tls, Arc::new(api), never).await {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        });
    }
    let log = std::thread::spawn(move || {
        // Crops also age out while nobody comes to the door.
        let mut next_purge = std::time::Instant::now() + CROP_PURGE_EVERY;
        loop {
            if std::time::Instant::now() >= next_purge {
                next_purge += CROP_PURGE_EVERY;
                if let Err(e) = audit.purge_crops() {
                    tracing::error!(error = %e, "audit log: face crop retention");
                }
            }
            let r = match rx.recv_timeout(CROP_PURGE_EVERY) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match serde_json::to_string(&r) {
                Ok(line) => println!("{line}"),
                Err(e) => tracing::warn!(error = %e, "record"),
            }
            // At the record's own time: the door thread's unlock record reaches this thread
            // before the decision that caused it, which would otherwise be logged after it.
            if let Some(e) = r.audit_event()
                && let Err(e) = audit.append_at(e, r.at_ms())
            {
                tracing::error!(error = %e, "audit log");
            }
        }
        if let Err(e) = audit.flush() {
            tracing::error!(error = %e, "audit log");
        }
    });
    // systemd (Type=notify): ready now; the watchdog is fed while the decision thread lives.
    if let Err(e) = hw::systemd::notify_ready() {
        tracing::warn!(error = %e, "sd_notify");
    }
    let mut told_misconfigured = false;
    rt.block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
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
                        tokio::time::sleep(std::time::Duration::from_millis(unlock_ms + 100)).await;
                        break;
                    }
                }
            }
        }
    });
    let _ = hw::systemd::notify_stopping();
    running.stop();
    let _ = log.join();
    Ok(ExitCode::SUCCESS)
}
