//! `facegate gallery …` and `facegate enroll DIR`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use facegate::access::EventSource;
use facegate::app::App;
use facegate::app::usecases::UseCases;
use facegate::app::usecases::enroll::{self, EnrollPhoto, EnrollRequest, PhotoRefusal, Who};
use facegate::config::Config;
use facegate::gallery::{GalleryError, NewPerson};
use facegate::vision::{Pipeline, frame};
use serde_json::json;

#[derive(Subcommand)]
pub enum GalleryCommand {
    /// List enrolled persons with their number of face templates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Enroll one person from one or more photos (each must show exactly one usable face).
    Add {
        /// Display name.
        name: String,
        #[arg(required = true, value_name = "IMG")]
        images: Vec<PathBuf>,
        /// Person id (1-64 letters, digits, '.', '_', '-', starting with a letter, a digit or
        /// '_'; not a Windows device name such as CON or NUL); generated when absent. An
        /// existing id gets the new photos added.
        #[arg(long)]
        id: Option<String>,
        /// Identifier in another system, such as a card number.
        #[arg(long)]
        external_id: Option<String>,
        /// Enroll even if a face already matches another person.
        #[arg(long)]
        allow_duplicate: bool,
    },
    /// Remove a person (all their face templates, locally and in Milvus), or one template.
    Remove {
        /// Person id.
        #[arg(required_unless_present = "template")]
        id: Option<String>,
        /// Remove only this face template.
        #[arg(long, conflicts_with = "id")]
        template: Option<u64>,
    },
    /// Replay queued writes to Milvus and pull changes from it now.
    Sync,
    /// Sizes, model, outbox depth, Milvus state.
    Stats {
        #[arg(long)]
        json: bool,
    },
}

pub fn explain_open_error(e: GalleryError) -> anyhow::Error {
    let text = e.to_string();
    if facegate::gallery::sled_db::mentions_lock_conflict(&text) {
        anyhow::anyhow!(
            "{text}\nthe gallery is in use by another facegate process (the door daemon?): \
             stop it, or make the change through its HTTP API"
        )
    } else {
        e.into()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Refuse a write when the gallery's disk is (nearly) full, as the API does (sled does not
/// recover from running out of space half-way through a write).
fn require_space(config: &Config) -> Result<()> {
    facegate::app::space::SpaceGuard::new(
        vec![config.gallery.path()],
        facegate::app::space::RESERVE_BYTES,
    )
    .check()?;
    Ok(())
}

pub fn run(config: &Config, cmd: GalleryCommand) -> Result<ExitCode> {
    if matches!(
        cmd,
        GalleryCommand::Add { .. } | GalleryCommand::Remove { .. } | GalleryCommand::Sync
    ) {
        require_space(config)?;
    }
    let app = super::open_app(config)?;
    let cases = app.use_cases(config);
    let g = &app.gallery.gallery;
    let rt = runtime()?;
    match cmd {
        GalleryCommand::List { json } => rt.block_on(async {
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = g.persons(after.as_deref(), 500).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for p in page {
                    let n = g.templates_of(&p.id).await?.len();
                    all.push((p, n));
                }
            }
            if json {
                let out: Vec<_> = all
                    .iter()
                    .map(|(p, n)| json!({"person": p, "templates": n}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for (p, n) in &all {
                    println!(
                        "{:<20} {:<30} {n} template{}{}",
                        p.id,
                        p.name,
                        if *n == 1 { "" } else { "s" },
                        if p.enabled { "" } else { "  (disabled)" }
                    );
                }
                println!(
                    "{} person{}",
                    all.len(),
                    if all.len() == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }),
        GalleryCommand::Add {
            name,
            images,
            id,
            external_id,
            allow_duplicate,
        } => {
            let mut pipeline = Pipeline::new(&app.models, config.vision.params())?;
            let person = NewPerson {
                id,
                name,
                external_id,
                ..NewPerson::default()
            };
            let report = rt.block_on(enroll_person(
                config,
                &app,
                &cases,
                &mut pipeline,
                person,
                &images,
                allow_duplicate,
                None,
            ))?;
            report.print();
            Ok(report.exit_code())
        }
        GalleryCommand::Remove { id, template } => rt.block_on(async {
            let removed = match (id, template) {
                (_, Some(t)) => cases.remove_face(EventSource::Cli, t).await?,
                (Some(id), None) => cases.remove_person(EventSource::Cli, &id).await?,
                (None, None) => bail!("give a person id or --template ID"),
            };
            println!(
                "removed {} person(s), {} template(s), {} queued outbox entr{}; Milvus {}",
                removed.persons,
                removed.templates,
                removed.outbox_entries,
                if removed.outbox_entries == 1 {
                    "y"
                } else {
                    "ies"
                },
                if app.gallery.tiered.is_none() {
                    "not configured"
                } else if removed.remote_confirmed {
                    "confirmed"
                } else {
                    "unreachable: the deletion is queued and replays on the next sync"
                }
            );
            Ok(ExitCode::SUCCESS)
        }),
        GalleryCommand::Sync => rt.block_on(async {
            if app.gallery.tiered.is_none() {
                bail!("no central gallery configured (milvus.url is empty): nothing to sync");
            }
            let r = g.sync().await?;
            println!(
                "outbox replayed {}, persons updated {} removed {}, templates added {} removed {}",
                r.outbox_replayed,
                r.persons_updated,
                r.persons_removed,
                r.templates_added,
                r.templates_removed
            );
            Ok(ExitCode::SUCCESS)
        }),
        GalleryCommand::Stats { json } => rt.block_on(async {
            let s = g.stats().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("gallery      {}", app.gallery.cache.path().display());
                println!("model        {} ({}-d)", s.model.name, s.model.dim);
                println!("persons      {}", s.persons);
                println!("templates    {}", s.templates);
                println!(
                    "size         {} bytes per template (in-memory matrix + sled record)",
                    s.bytes_per_template
                );
                println!("outbox       {} queued", s.outbox_depth);
                println!("threshold    {:.4}", app.threshold);
                println!("central      {}", serde_json::to_string(&s.remote)?);
                if let Some(n) = s.remote_templates {
                    println!("central rows {n} templates");
                }
            }
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// What happened to each photo.
#[derive(Default)]
struct Report {
    persons: usize,
    /// Photos skipped because they were enrolled before (a re-run of the same folder).
    already: usize,
    templates: usize,
    rejected: Vec<(PathBuf, String)>,
    failed_persons: Vec<(String, String)>,
}

impl Report {
    fn print(&self) {
        println!(
            "enrolled {} template{} for {} person{}; {} photo{} rejected",
            self.templates,
            if self.templates == 1 { "" } else { "s" },
            self.persons,
            if self.persons == 1 { "" } else { "s" },
            self.rejected.len(),
            if self.rejected.len() == 1 { "" } else { "s" },
        );
        for (p, why) in &self.rejected {
            println!("  rejected {}: {why}", p.display());
        }
        for (p, why) in &self.failed_persons {
            println!("  person {p} not enrolled: {why}");
        }
    }

    fn exit_code(&self) -> ExitCode {
        if (self.templates == 0 && self.already == 0) || !self.failed_persons.is_empty() {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Enroll one person's photos through the enrollment use-case (the API's): vision on each
/// photo, then the duplicate-face rule, the person (if new) and the templates in one write,
/// and an audit event per photo.
#[allow(clippy::too_many_arguments)]
async fn enroll_person(
    config: &Config,
    app: &App,
    cases: &UseCases,
    pipeline: &mut Pipeline,
    person: NewPerson,
    files: &[PathBuf],
    allow_duplicate: bool,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Report> {
    let photos = files
        .iter()
        .map(|path| {
            let face = frame::read_image(path, config.vision.max_image_pixels)
                .map_err(PhotoRefusal::Unreadable)
                .and_then(|img| enroll::look(pipeline, &img, None));
            if let Some(pb) = progress {
                pb.inc(1);
            }
            EnrollPhoto {
                label: Some(path.display().to_string()),
                face,
            }
        })
        .collect();
    let shown = person.id.clone().unwrap_or(person.name.clone());
    let enrollment = cases
        .enroll(EnrollRequest {
            source: EventSource::Cli,
            who: Who::CreateIfAbsent(person),
            photos,
            allow_duplicate,
        })
        .await?;
    let mut report = Report::default();
    for (path, photo) in files.iter().zip(&enrollment.photos) {
        match &photo.result {
            Ok(_) => report.templates += 1,
            Err(why) => {
                if matches!(why, PhotoRefusal::AlreadyEnrolled { .. }) {
                    report.already += 1;
                }
                report
                    .rejected
                    .push((path.clone(), refusal_text(path, why)));
            }
        }
    }
    if report.templates == 0 {
        if report.already == 0 {
            report
                .failed_persons
                .push((shown, "no usable photo".into()));
        }
        return Ok(report);
    }
    report.persons = 1;
    if let (Some(id), Some(w)) = (&enrollment.person, &enrollment.written)
        && app.gallery.tiered.is_some()
        && !w.remote_confirmed
    {
        eprintln!(
            "warning: Milvus unreachable; {id}'s templates are queued and replay on the next sync"
        );
    }
    Ok(report)
}

/// Why a photo was refused, for the report (its path is printed beside it).
fn refusal_text(path: &Path, why: &PhotoRefusal) -> String {
    match why {
        PhotoRefusal::Duplicate { .. } => {
            format!("{why}; use --allow-duplicate to enroll anyway")
        }
        PhotoRefusal::Unreadable(_) => {
            let msg = why.to_string();
            let prefix = format!("{}: ", path.display());
            msg.strip_prefix(&prefix).map(str::to_owned).unwrap_or(msg)
        }
        _ => why.to_string(),
    }
}

/// Person id of a folder name: invalid characters become '_', at most 64 characters.
fn folder_id(name: &str) -> String {
    let id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() { "_".into() } else { id }
}

const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "webp", "pgm", "ppm"];

/// `facegate enroll DIR`: every sub-folder is a person (its name the id and display name),
/// every image in it a photo of them.
pub fn enroll_dir(
    config: &Config,
    dir: &Path,
    allow_duplicate: bool,
    as_json: bool,
) -> Result<ExitCode> {
    require_space(config)?;
    let mut people: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut files: Vec<PathBuf> = std::fs::read_dir(entry.path())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        if !files.is_empty() {
            people.insert(name, files);
        }
    }
    if people.is_empty() {
        bail!(
            "{}: no <person>/<images> folders found (expected e.g. {}/alice/1.jpg)",
            dir.display(),
            dir.display()
        );
    }
    let app = super::open_app(config)?;
    let cases = app.use_cases(config);
    let mut pipeline = Pipeline::new(&app.models, config.vision.params())?;
    let total: usize = people.values().map(Vec::len).sum();
    let pb = indicatif::ProgressBar::new(total as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} photos  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let rt = runtime()?;
    let mut all = Report::default();
    for (name, files) in &people {
        pb.set_message(name.clone());
        let person = NewPerson {
            id: Some(folder_id(name)),
            name: name.replace('_', " "),
            ..NewPerson::default()
        };
        let r = rt.block_on(enroll_person(
            config,
            &app,
            &cases,
            &mut pipeline,
            person,
            files,
            allow_duplicate,
            Some(&pb),
        ));
        match r {
            Ok(r) => {
                all.persons += r.persons;
                all.templates += r.templates;
                all.already += r.already;
                all.rejected.extend(r.rejected);
                all.failed_persons.extend(r.failed_persons);
            }
            Err(e) => all.failed_persons.push((name.clone(), format!("{e:#}"))),
        }
    }
    pb.finish_and_clear();
    if as_json {
        let out = json!({
            "persons": all.persons,
            "templates": all.templates,
            "rejected": all.rejected.iter().map(|(p, w)| json!({"file": p, "reason": w})).collect::<Vec<_>>(),
            "failed_persons": all.failed_persons.iter().map(|(p, w)| json!({"person": p, "reason": w})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        all.print();
    }
    Ok(all.exit_code())
}
