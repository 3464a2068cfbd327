//! `facegate run`: the door daemon (the application is `facegate::app::door`; this is the
//! command line's side: arguments, camera and hardware choice, messages).

use anyhow::{Context, Result};
use facegate::app::StopReason;
use facegate::app::door::{ApiListen, DoorApp};
use facegate::camera::{CameraStatus, Reopening};
use facegate::config::Config;
use facegate::hw;
use std::path::PathBuf;
use std::process::ExitCode;

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
    let op = app.visit_rule.state();
    eprintln!(
        "facegate: recognition threshold {:.4} for a visit ({} templates{})",
        op.threshold,
        op.templates,
        op.target_fpir
            .map(|f| format!(", target FPIR {f:e}"))
            .unwrap_or_else(|| ", fixed by recognition.threshold".into())
    );
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
    // The HTTP API, with this door attached, when an admin token is configured.
    let api = if config.api.admin_token_sha256.is_empty() {
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
        Some(ApiListen { addr, tls })
    };
    let api_addr = api.as_ref().map(|a| a.addr);
    let door = DoorApp::start(
        &app,
        config,
        &rt,
        hardware,
        camera,
        camera_status.clone(),
        api,
    )?;
    eprintln!(
        "facegate: door running (gallery {}, {} templates); Ctrl-C or SIGTERM to stop",
        app.gallery.cache.path().display(),
        app.gallery.cache.template_count()
    );
    if let Some(addr) = api_addr {
        eprintln!("facegate: HTTP API on {addr}/v1, door attached");
        if config.console.enabled {
            eprintln!("facegate: web console on {addr}/console");
        }
    }
    if config.access.save_face_crops {
        eprintln!(
            "facegate: saving face crops with door decisions (kept {} days, at most {})",
            config.access.face_crop_retention_days, config.access.face_crop_max
        );
    }
    let mut told_misconfigured = false;
    door.wait(&rt, || {
        if !told_misconfigured
            && let CameraStatus::Misconfigured { reason, advice } = camera_status.get()
        {
            // The door (exit button, remote unlock) keeps working without faces.
            eprintln!(
                "facegate: the camera is misconfigured and is not retried: {reason}. To fix: \
                 {advice}, then restart facegate. The door keeps working (exit button, API); \
                 faces are not recognised until then."
            );
            told_misconfigured = true;
        }
    });
    let reason = shutdown.reason().unwrap_or(StopReason::Finished);
    eprintln!("facegate: stopping ({})", reason.as_str());
    let stopped = door.stop(&rt);
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
    stopped?;
    Ok(ExitCode::SUCCESS)
}
