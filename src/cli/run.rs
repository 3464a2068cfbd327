//! `facegate run`: the door daemon.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::{Context, Result};
use facegate::access::daemon::{self, DaemonConfig};
use facegate::camera::Reopening;
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

pub fn run(config: &Config, args: RunArgs) -> Result<ExitCode> {
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

    let mut cam = config.camera.clone();
    if let Some(dir) = &args.frames {
        cam.source = facegate::camera::SourceKind::Recorded;
        cam.recorded_dir = dir.clone();
    }
    if args.once {
        cam.recorded_loop = false;
    }
    cam.check().map_err(anyhow::Error::msg)?;
    let camera = Reopening::from_config(&cam);
    let camera_status = camera.status();

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
    let (tx, rx) = mpsc::channel();
    let running = daemon::start(
        &models,
        config.vision.params(),
        Arc::clone(&opened.gallery),
        rt.handle().clone(),
        hardware,
        camera,
        Some(camera_status),
        DaemonConfig {
            policy: config.access.policy(threshold),
            door: config.access.door(unlock_ms),
            top_k: config.gallery.top_k,
            display_hold_ms: 2000,
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
            .with_context(|| format!("opening the audit log at {}", audit_path.display()))?,
    );
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
        for r in rx {
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
    rt.block_on(async {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                _ = &mut ctrl_c => break,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
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
