//! `facegate doctor`: check an installation with the same library code and configuration
//! `facegate run` uses, and say what is wrong in words a building technician understands.
//!
//! One line per check: `OK`, `WARNING` (works, but look at it), `PROBLEM` (the door will not
//! work as configured; the line says what to do) or `SKIPPED` (not configured). Exit code 1
//! when any check is a PROBLEM. Nothing is changed: no GPIO line is requested (the door is
//! never unlocked), no display is drawn on, no gallery or collection is created.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use facegate::camera::{self, CameraConfig, CameraError, SourceKind};
use facegate::config::Config;
use facegate::gallery::{Cache, GalleryError, ModelTag};
use facegate::host::{self, human_bytes};
use facegate::hw::config::{DisplayKind, GpioBackend, HwConfig};
use facegate::hw::inspect;
use facegate::vision::model::{self, ModelCard, ModelKind};
use facegate::vision::{Models, selftest};
use serde::Serialize;

mod hardware;
mod models;
mod storage;

use hardware::*;
use models::*;
use storage::*;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// One JSON object per check and line (`check`, `status`, `message`, `fix`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Problem,
    Skipped,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Problem => "PROBLEM",
            Status::Skipped => "SKIPPED",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (PROBLEM and WARNING lines).
    pub fix: Option<String>,
}

impl Check {
    fn new(check: &'static str, status: Status, message: impl Into<String>) -> Check {
        Check {
            check,
            status,
            message: message.into(),
            fix: None,
        }
    }

    fn ok(check: &'static str, message: impl Into<String>) -> Check {
        Check::new(check, Status::Ok, message)
    }

    fn skipped(check: &'static str, message: impl Into<String>) -> Check {
        Check::new(check, Status::Skipped, message)
    }

    fn warning(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(check, Status::Warning, message).with_fix(fix)
    }

    fn problem(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Check {
        Check::new(check, Status::Problem, message).with_fix(fix)
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Check {
        let fix = fix.into();
        self.fix = (!fix.is_empty()).then_some(fix);
        self
    }

    /// The text line: status and check name in columns, then the message and what to do.
    pub fn line(&self) -> String {
        let mut text = self.message.trim_end_matches('.').to_string();
        if let Some(fix) = &self.fix {
            text.push_str(if text.ends_with(['?', '!']) {
                " "
            } else {
                ". "
            });
            text.push_str(&capitalised(fix));
            if !fix.ends_with(['.', '?', '!', ')']) {
                text.push('.');
            }
        }
        format!("{:<9}{:<12}{text}", self.status.word(), self.check)
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Whether any check is a PROBLEM (the exit code is then 1).
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Problem)
}

fn exit_code(checks: &[Check]) -> ExitCode {
    if failed(checks) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints each check as soon as it is made.
struct Report {
    json: bool,
    checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, c: Check) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(&c)?);
        } else {
            println!("{}", c.line());
        }
        self.checks.push(c);
        Ok(())
    }
}

pub fn run(config_arg: Option<&Path>, args: DoctorArgs) -> Result<ExitCode> {
    let mut report = Report {
        json: args.json,
        checks: Vec::new(),
    };
    let config = match check_config(config_arg) {
        (c, Some(config)) => {
            report.add(c)?;
            config
        }
        (c, None) => {
            report.add(c)?;
            if !args.json {
                println!("(the other checks need a configuration that loads)");
            }
            return Ok(exit_code(&report.checks));
        }
    };
    let gallery_path = absolute(&config.gallery.path());
    let recorded = Cache::recorded_model(&gallery_path);
    let (c, model) = check_models(&config, recorded.as_ref().ok().and_then(Option::as_ref));
    report.add(c)?;
    report.add(check_camera(&config.camera))?;
    if let Some(c) = check_ir_camera(&config) {
        report.add(c)?;
    }
    report.add(check_gpio(&config.hw))?;
    report.add(check_display(&config.hw))?;
    let (c, local_templates) = check_gallery(&config, &gallery_path, recorded, model.as_ref());
    report.add(c)?;
    report.add(check_milvus(&config, model.as_ref(), local_templates)?)?;
    report.add(check_recognition(&config, local_templates))?;
    report.add(check_audit(&config, &gallery_path))?;
    report.add(check_disk(&gallery_path))?;
    report.add(check_clock(facegate::gallery::now_ms()))?;
    Ok(exit_code(&report.checks))
}

/// `path` made absolute (against the working directory) for messages: a technician reading
/// "facegate-data/gallery" cannot tell where that is.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn check_config(arg: Option<&Path>) -> (Check, Option<Config>) {
    let file = crate::config_file(arg);
    match &file {
        None => (
            Check::ok(
                "config",
                format!(
                    "built-in defaults (there is no {}; `facegate init` writes one)",
                    crate::SYSTEM_CONFIG
                ),
            ),
            Some(Config::default()),
        ),
        Some(path) => match Config::load(path) {
            Ok(c) => (
                Check::ok("config", format!("{} loads", absolute(path).display())),
                Some(c),
            ),
            Err(e) => (
                Check::problem(
                    "config",
                    e.to_string(),
                    "fix the file (every key and its meaning: /etc/facegate/config.toml as \
                     installed, or `facegate init --config NEW_FILE` writes the documented \
                     default), then run facegate doctor again",
                ),
                None,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_columns_and_end_with_what_to_do() {
        let c = Check::problem(
            "camera",
            "/dev/video2 does not exist. Is the camera plugged in? Cameras found: none",
            "check the camera's cable",
        );
        assert_eq!(
            c.line(),
            "PROBLEM  camera      /dev/video2 does not exist. Is the camera plugged in? Cameras \
             found: none. Check the camera's cable."
        );
        let c = Check::ok(
            "gpio",
            "chip gpiochip0 \"pinctrl-bcm2711\": relay line 17 free.",
        );
        assert_eq!(
            c.line(),
            "OK       gpio        chip gpiochip0 \"pinctrl-bcm2711\": relay line 17 free"
        );
        let c = Check::warning("milvus", "down", "check the network (and milvus.url)");
        assert!(
            c.line().starts_with("WARNING  milvus      down. Check"),
            "{}",
            c.line()
        );
        assert!(c.line().ends_with("milvus.url)"), "{}", c.line());
        assert_eq!(Check::warning("disk", "x", "").fix, None);
        assert!(
            Check::skipped("display", "none")
                .line()
                .starts_with("SKIPPED  display     ")
        );
    }

    #[test]
    fn json_has_the_status_in_lower_case_and_the_fix() {
        let c = Check::problem("models", "model file x is missing", "reinstall");
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert_eq!(v["check"], "models");
        assert_eq!(v["status"], "problem");
        assert_eq!(v["fix"], "reinstall");
        let v = serde_json::to_value(Check::ok("clock", "2026-11-24 (UTC)")).unwrap();
        assert_eq!(
            (v["status"].as_str(), v["fix"].is_null()),
            (Some("ok"), true)
        );
    }

    #[test]
    fn only_a_problem_fails() {
        let ok = Check::ok("a", "x");
        let warn = Check::warning("b", "y", "z");
        let skip = Check::skipped("c", "w");
        assert!(!failed(&[ok.clone(), warn.clone(), skip]));
        assert!(failed(&[ok, warn, Check::problem("d", "v", "u")]));
    }

    #[test]
    fn an_unset_clock_is_a_warning_that_says_the_date() {
        let c = check_clock(0);
        assert_eq!(c.status, Status::Warning);
        assert!(c.message.contains("1970-01-01"), "{}", c.message);
        let c = check_clock(1_795_478_400_000);
        assert_eq!(
            (c.status, c.message.as_str()),
            (Status::Ok, "2026-11-24 (UTC)")
        );
    }

    #[test]
    fn no_milvus_is_skipped_with_the_reason() {
        let c = check_milvus(&Config::default(), None, None).unwrap();
        assert_eq!(c.status, Status::Skipped);
        assert!(c.message.contains("[milvus] url is empty"), "{}", c.message);
    }
}
