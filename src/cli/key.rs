//! `facegate key create` and `facegate key rotate`: the device key that seals the gallery and
//! the audit log at rest (see facegate::crypto).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use facegate::config::Config;
use facegate::crypto::{DeviceKey, KeySlots, KeySource};

#[derive(clap::Subcommand)]
pub enum KeyCommand {
    /// Create the device key (gallery.key_file, else /etc/facegate/device.key): 32 random
    /// bytes as hex, mode 0600. An existing key is never replaced.
    Create {
        /// Write it here instead.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Replace the device key: a new key is made, every data key of the gallery and the audit
    /// log is wrapped again under it (their records are not rewritten), then the key file is
    /// replaced. Stop facegate first. Safe to run again after an interruption: it resumes.
    ///
    /// With a systemd credential, give --to FILE: the new key is written there, and you encrypt
    /// it as the new credential (systemd-creds encrypt) before restarting.
    Rotate {
        /// Write the new key to FILE and leave the configured key file alone.
        #[arg(long, value_name = "FILE")]
        to: Option<PathBuf>,
    },
}

pub fn run(config: &Config, cmd: KeyCommand) -> Result<ExitCode> {
    match cmd {
        KeyCommand::Create { file } => {
            let path = file.unwrap_or_else(|| config.gallery.key_source().path().to_owned());
            if path.exists() {
                bail!(
                    "{} exists; a device key is never replaced (see `facegate key rotate`)",
                    path.display()
                );
            }
            DeviceKey::create(&path).with_context(|| format!("creating {}", path.display()))?;
            println!(
                "device key written to {} (mode 0600); keep a copy apart from this device",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Rotate { to } => rotate(config, to),
    }
}

/// Make the device key for `init` when none exists at `path`; says what it did.
pub fn ensure(path: &Path) -> Result<()> {
    if path.exists() {
        println!("device key {} exists: kept", path.display());
        return Ok(());
    }
    DeviceKey::create(path)
        .with_context(|| format!("creating the device key {}", path.display()))?;
    println!(
        "device key written to {} (mode 0600): it seals the gallery and the audit log; keep a \
         copy apart from this device (without it they cannot be read)",
        path.display()
    );
    Ok(())
}

fn pending(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    path.with_file_name(name)
}

fn rotate(config: &Config, to: Option<PathBuf>) -> Result<ExitCode> {
    let source = config.gallery.key_source();
    if to.is_none() && matches!(source, KeySource::Credential(_)) {
        bail!("the device key is a systemd credential: give --to FILE for the new key");
    }
    let old = DeviceKey::load(&source).context("the current device key")?;
    let new_path = to.clone().unwrap_or_else(|| pending(source.path()));
    let new = if new_path.exists() {
        // An interrupted rotation: go on with the key it made.
        DeviceKey::load(&KeySource::File(new_path.clone()))?
    } else {
        DeviceKey::create(&new_path)?
    };
    let gallery = config.gallery.path();
    let audit = config.api.audit_path(&gallery);
    // Hold both databases so that no facegate runs meanwhile.
    let mut held = Vec::new();
    for dir in [&gallery, &audit] {
        if dir.join("db").is_file() {
            held.push(
                facegate::gallery::sled_db::open(dir, sled::Mode::LowSpace)
                    .with_context(|| format!("{} is in use: stop facegate first", dir.display()))?,
            );
        }
    }
    for dir in [&gallery, &audit] {
        let slots = dir.join(facegate::gallery::sealed::SLOTS_FILE);
        match KeySlots::made_with(&slots, &new)? {
            None => continue,
            Some(true) => println!("{}: already under the new key", slots.display()),
            Some(false) => {
                KeySlots::rewrap(&slots, &old, &new)
                    .with_context(|| format!("re-wrapping {}", slots.display()))?;
                println!("{}: data keys wrapped under the new key", slots.display());
            }
        }
    }
    drop(held);
    if to.is_none() {
        std::fs::rename(&new_path, source.path())
            .with_context(|| format!("replacing {}", source.path().display()))?;
        facegate::crypto::fsmode::sync_parent(source.path());
        println!(
            "{} replaced by the new key; the old one no longer opens anything",
            source.path().display()
        );
    } else {
        println!(
            "new key in {}: make it the credential (systemd-creds encrypt --name=facegate-device-key {} ...), then restart facegate",
            new_path.display(),
            new_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
