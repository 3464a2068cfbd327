//! `facegate init`, `facegate token` and `facegate serve`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use facegate::api::auth::{generate_token, hash_token};
use facegate::api::{self, Api};
use facegate::config::{Config, default_toml};

/// Write the documented default configuration with a new admin token's hash; print the token.
pub fn init(path: &Path, force: bool) -> Result<ExitCode> {
    if path.exists() && !force {
        bail!(
            "{} already exists; pass --force to replace it (its tokens stop working)",
            path.display()
        );
    }
    let token = generate_token()?;
    let text = default_toml().replacen(
        "admin_token_sha256 = \"\"",
        &format!("admin_token_sha256 = \"{}\"", hash_token(&token)),
        1,
    );
    // The device key beside the configuration (for /etc/facegate/config.toml, the default
    // /etc/facegate/device.key), named in it.
    let key_file = std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .with_file_name("device.key");
    let text = text.replacen(
        "key_file = \"\"",
        &format!("key_file = {:?}", key_file.display().to_string()),
        1,
    );
    // The written file must load, with the token in force.
    let parsed = Config::parse(&text, path)?;
    if parsed.api.admin_token_sha256.is_empty() {
        bail!("internal error: the default configuration has no admin_token_sha256 line");
    }
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    super::key::ensure(&key_file)?;
    println!("admin token (shown only now; the configuration keeps only its SHA-256):");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// Print a new token and the configuration line with its hash.
pub fn token(viewer: bool) -> Result<ExitCode> {
    let token = generate_token()?;
    let key = if viewer {
        "viewer_token_sha256"
    } else {
        "admin_token_sha256"
    };
    println!("token: {token}");
    println!("# paste into the [api] section of the configuration:");
    println!("{key} = \"{}\"", hash_token(&token));
    Ok(ExitCode::SUCCESS)
}

/// Serve the HTTP API without a camera or door until Ctrl-C / SIGTERM.
pub fn serve(config: &Config, listen: Option<&str>) -> Result<ExitCode> {
    if config.api.admin_token_sha256.is_empty() {
        bail!(
            "no admin token configured (api.admin_token_sha256 is empty): run `facegate init \
             --config FILE` to write a configuration with one, then `facegate serve --config FILE`"
        );
    }
    let addr: SocketAddr = match listen {
        Some(a) => a
            .parse()
            .with_context(|| format!("--listen {a:?}: write it as IP:PORT"))?,
        None => config.api.listen_addr().map_err(anyhow::Error::msg)?,
    };
    let tls = config
        .api
        .tls()
        .map(|(cert, key)| api::tls::server_config(cert, key))
        .transpose()?;
    let app = super::open_app(config)?;
    let api = Api::new(&config.api, app.api_parts(config, None))?
        .with_space_guard(app.space_guard())
        .with_sinks(app.sinks.clone())
        .with_console(&config.console, tls.is_some())?;
    let slots = api.inference.slots();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // MQTT and webhooks, when configured: every request's event (enrollments, removals,
    // verifications, identifications, unlock refusals) through the one fan-out, as at the door.
    if let Some(out) = facegate::app::events_out_sink(&app, config, &runtime, None)
        .context("starting events out ([mqtt], [webhooks])")?
    {
        app.sinks.add(out);
    }
    let sinks = app.sinks.clone();
    let reason = app.shutdown.clone();
    runtime.block_on(async move {
        app.shutdown
            .listen_for_signals()
            .context("installing the SIGINT/SIGTERM handlers")?;
        if let Some(tiered) = &app.gallery.tiered {
            tiered.spawn_sync();
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        if api.console.is_some() {
            eprintln!("facegate web console on {scheme}://{addr}/console");
        }
        eprintln!(
            "facegate API on {scheme}://{addr}/v1 (docs at /v1/docs; {slots} inference slot{}; gallery {}; no door: serve mode)",
            if slots == 1 { "" } else { "s" },
            app.gallery_path.display()
        );
        if let Err(e) = facegate::host::systemd::notify_ready() {
            tracing::warn!(error = %e, "sd_notify");
        }
        api::serve(listener, tls, Arc::new(api), app.shutdown.wait_owned())
            .await
            .context("serving the API")?;
        if let Err(e) = facegate::host::systemd::notify_stopping() {
            tracing::warn!(error = %e, "sd_notify");
        }
        anyhow::Ok(())
    })?;
    // Outside the runtime: the events-out sink waits (a few seconds at most) for its queues
    // to drain, then stops its tasks; what is left is sent at the next start.
    sinks.flush().context("flushing the audit log")?;
    eprintln!(
        "facegate API stopped ({})",
        reason.reason().map_or("finished", |r| r.as_str())
    );
    Ok(ExitCode::SUCCESS)
}
