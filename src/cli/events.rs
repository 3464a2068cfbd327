//! `facegate events`: the audit log, filtered, as a table or JSON lines.
//!
//! The log is a sled database, and sled lets one process open it at a time: while `facegate
//! run` or `facegate serve` holds it, this command reads the running facegate's HTTP API
//! instead (`GET /v1/events`) with the token in `FACEGATE_TOKEN`, or says how to.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use facegate::access::audit::MAX_PAGE;
use facegate::access::when::{self, TimeZone};
use facegate::access::{Action, AuditLog, Event, EventFilter, EventSource, Outcome};
use facegate::config::Config;
use facegate::gallery::now_ms;
use serde::{Deserialize, Serialize};

mod api_client;
mod output;

use api_client::*;
use output::*;

/// The environment variable holding the API token for reading through a running facegate.
pub const TOKEN_ENV: &str = "FACEGATE_TOKEN";

#[derive(clap::Args)]
#[command(
    after_help = "WHEN is a local date or time (2026-11-24, \"2026-11-24 08:00\"), RFC 3339 \
(2026-11-24T08:00:00+01:00), a span back from now (15m, 2h, 3d, 1w), today, yesterday or now. \
--since is inclusive, --until exclusive: --since yesterday --until today is all of yesterday.\n\n\
Events are listed oldest first (newest at the bottom), in local time; --limit keeps the most \
recent ones.\n\n\
While a facegate (the door daemon or `facegate serve`) is running, it holds the audit log: \
the events are then read through its HTTP API, with the viewer or admin token in the \
environment variable FACEGATE_TOKEN (the admin token for --crops)."
)]
pub struct EventsArgs {
    /// Only events at or after WHEN.
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events before WHEN.
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Only events about this person (id).
    #[arg(long, value_name = "ID")]
    pub person: Option<String>,
    /// Only this outcome: granted, denied, unknown, no_face, enrolled, rejected, deleted,
    /// unlocked.
    #[arg(long, value_name = "OUTCOME")]
    pub outcome: Option<String>,
    /// Only events from the door, the HTTP API or the command line.
    #[arg(long, value_name = "door|api|cli")]
    pub source: Option<String>,
    /// Show at most the N most recent matching events (0: all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Keep printing new events as they come (through a running facegate's API), until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Write the face crop of each listed event that has one to DIR/<event-id>.jpg
    /// (access.save_face_crops; the files are personal data).
    #[arg(long, value_name = "DIR")]
    pub crops: Option<PathBuf>,
    /// Read through the HTTP API at this address (e.g. http://127.0.0.1:8080) even when the
    /// audit log could be opened here. Default: only when it is in use, at api.listen.
    #[arg(long, value_name = "URL")]
    pub api: Option<String>,
    /// Check the log's hash chain instead of listing events: every event against the MAC of
    /// the one appended before it, and the log's authenticated head and counts. Prints the
    /// first broken link (exit code 1) or how many events are intact. Needs the log itself
    /// (not through the API): stop a running facegate first.
    #[arg(long, conflicts_with_all = ["follow", "api", "crops"])]
    pub verify: bool,
}

/// One page of events, as the log and the API give it (newest first).
#[derive(Deserialize)]
struct Page {
    events: Vec<Event>,
    next: Option<String>,
}

/// Where the events come from.
enum Reader {
    Local {
        log: Box<AuditLog>,
        gallery: PathBuf,
        key: facegate::crypto::DeviceKey,
    },
    Api(ApiClient),
}

impl Reader {
    fn page(&mut self, filter: &EventFilter, cursor: Option<&str>, limit: usize) -> Result<Page> {
        match self {
            Reader::Local { log, .. } => {
                let p = log.query(filter, cursor, limit)?;
                Ok(Page {
                    events: p.events,
                    next: p.next,
                })
            }
            Reader::Api(api) => api.events(filter, cursor, limit),
        }
    }

    /// Names of persons, when they can be had cheaply; missing ones are left out.
    fn names(&mut self, ids: &[&str]) -> HashMap<String, String> {
        if ids.is_empty() {
            return HashMap::new();
        }
        match self {
            Reader::Local { gallery, key, .. } => {
                match facegate::gallery::names::read_person_names(gallery, ids, key) {
                    Ok(names) => names.unwrap_or_default(),
                    Err(e) => {
                        tracing::debug!(error = %e, "names not read from the gallery");
                        HashMap::new()
                    }
                }
            }
            Reader::Api(api) => ids
                .iter()
                .filter_map(|id| match api.person_name(id) {
                    Ok(name) => name.map(|n| ((*id).to_owned(), n)),
                    Err(e) => {
                        tracing::debug!(error = %e, person = %id, "name not read from the API");
                        None
                    }
                })
                .collect(),
        }
    }

    fn crop(&mut self, id: u64) -> Result<Option<Vec<u8>>> {
        match self {
            Reader::Local { log, .. } => Ok(log.face_crop(id)?),
            Reader::Api(api) => api.face_crop(id),
        }
    }
}

pub fn run(config: &Config, args: EventsArgs) -> Result<ExitCode> {
    let zone = &when::local_zone();
    let now = now_ms();
    let filter = filter_from(&args, now, zone)?;
    if args.follow && filter.until_ms.is_some() {
        bail!("--follow shows new events as they come: it cannot be combined with --until");
    }
    let gallery = config.gallery.path();
    let audit_path = config.api.audit_path(&gallery);
    let mut reader = match &args.api {
        Some(url) => Reader::Api(ApiClient::new(config, url)?),
        None => open_local(config, &audit_path, gallery)?,
    };
    if args.verify {
        return verify(&reader, &audit_path, zone, args.json);
    }
    let limit = if args.limit == 0 {
        usize::MAX
    } else {
        args.limit
    };
    // Newest first from the log, until `limit`; shown oldest first.
    let mut events = Vec::new();
    let mut cursor: Option<String> = None;
    let mut more = false;
    loop {
        let want = (limit - events.len()).min(MAX_PAGE);
        let page = reader.page(&filter, cursor.as_deref(), want)?;
        events.extend(page.events);
        match page.next {
            Some(next) if events.len() < limit => cursor = Some(next),
            Some(_) => {
                more = true;
                break;
            }
            None => break,
        }
    }
    events.reverse();
    let mut out = Output::new(&args, zone);
    out.print(&mut reader, &events)?;
    if !args.json {
        let what = if events.len() == 1 { "event" } else { "events" };
        let note = if more {
            format!(
                "; the {} most recent of more (--limit N or 0 for all, --since WHEN)",
                events.len()
            )
        } else {
            String::new()
        };
        println!(
            "{} {what}, oldest first, local time (UTC{}){note}",
            events.len(),
            when::format_offset(now, zone)
        );
    }
    if let Some(dir) = &args.crops {
        let written = write_crops(&mut reader, dir, &events)?;
        eprintln!(
            "facegate: {written} face crop{} written to {}",
            if written == 1 { "" } else { "s" },
            dir.display()
        );
    }
    if args.follow {
        match &mut reader {
            Reader::Local { .. } => eprintln!(
                "facegate: --follow: no facegate is running on this audit log, so no new events \
                 can come; start the door (facegate run) and run this again"
            ),
            Reader::Api(_) => follow(&mut reader, &filter, &events, &mut out, args.crops)?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn filter_from(args: &EventsArgs, now: i64, zone: &TimeZone) -> Result<EventFilter> {
    let time = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| when::parse_when(s, now, zone).map_err(|e| anyhow!("--{flag}: {e}")))
            .transpose()
    };
    let from_ms = time("since", &args.since)?;
    let until_ms = time("until", &args.until)?;
    if let (Some(a), Some(b)) = (from_ms, until_ms)
        && a >= b
    {
        bail!(
            "--since {} is not before --until {}: no event can match (--until is exclusive)",
            when::format_local(a, zone),
            when::format_local(b, zone)
        );
    }
    let outcome = args
        .outcome
        .as_deref()
        .map(|s| {
            Outcome::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                anyhow!(
                    "--outcome {s:?}: use one of {}",
                    Outcome::ALL.map(Outcome::as_str).join(", ")
                )
            })
        })
        .transpose()?;
    let source = match args
        .source
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => None,
        Some(name) => match EventSource::parse(name) {
            Some(s) => Some(s),
            None => bail!("--source {name:?}: use door, api or cli"),
        },
    };
    Ok(EventFilter {
        from_ms,
        until_ms,
        person: args.person.clone(),
        outcome,
        action: None,
        source,
    })
}

fn open_local(config: &Config, audit_path: &Path, gallery: PathBuf) -> Result<Reader> {
    if !audit_path.join("db").is_file() {
        bail!(
            "there is no audit log at {} yet: nothing has been recorded with this configuration \
             (facegate run and facegate serve create it; api.audit_path sets where)",
            audit_path.display()
        );
    }
    let key = facegate::gallery::load_device_key(&config.gallery)
        .context("the audit log is sealed with the device key")?;
    match AuditLog::open(audit_path, config.api.audit_max_events, &key)
        .and_then(|log| log.with_crop_retention(config.access.crop_retention()))
    {
        Ok(log) => Ok(Reader::Local {
            log: Box::new(log),
            gallery,
            key,
        }),
        Err(e) if facegate::gallery::sled_db::mentions_lock_conflict(&e) => {
            let url = default_api_url(config)?;
            let in_use = format!(
                "the audit log at {} is in use by a running facegate (the door daemon or \
                 `facegate serve`; only one process can open it at a time)",
                audit_path.display()
            );
            if config.api.admin_token_sha256.is_empty() {
                bail!(
                    "{in_use}, and that facegate serves no HTTP API to read it through \
                     (api.admin_token_sha256 is empty). Stop it to read the log here (sudo \
                     systemctl stop facegate), or set up the API with `facegate init` and \
                     restart it"
                );
            }
            if std::env::var(TOKEN_ENV).map_or(true, |t| t.trim().is_empty()) {
                bail!(
                    "{in_use}. Read it through that facegate's HTTP API: set {TOKEN_ENV} to the \
                     viewer or admin token and run this command again, or\n  curl -H \
                     \"Authorization: Bearer $TOKEN\" '{url}/v1/events?limit=100'"
                );
            }
            eprintln!(
                "facegate: the audit log is in use by a running facegate; reading it through \
                 its HTTP API at {url}"
            );
            Ok(Reader::Api(ApiClient::new(config, &url)?))
        }
        Err(e) => {
            Err(e).with_context(|| format!("opening the audit log at {}", audit_path.display()))
        }
    }
}

/// `--verify`: check the chain, print the first broken link.
fn verify(reader: &Reader, path: &Path, zone: &TimeZone, json: bool) -> Result<ExitCode> {
    let Reader::Local { log, .. } = reader else {
        bail!(
            "--verify needs the audit log itself, not the HTTP API: stop the running facegate \
             (sudo systemctl stop facegate) and run it again"
        );
    };
    let v = log
        .verify()
        .with_context(|| format!("verifying the audit log at {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        match &v.broken {
            None => println!(
                "audit log {}: chain intact ({} event{})",
                path.display(),
                v.intact,
                if v.intact == 1 { "" } else { "s" }
            ),
            Some(b) => {
                let at = b
                    .time_ms
                    .map(|t| format!(" at {}", when::format_local(t, zone)))
                    .unwrap_or_default();
                let event = b
                    .event
                    .map(|e| format!(" (event {e}{at})"))
                    .unwrap_or_default();
                println!(
                    "audit log {}: BROKEN LINK{event}: {}; {} event{} before it intact",
                    path.display(),
                    b.reason,
                    v.intact,
                    if v.intact == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(if v.broken.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The running facegate's API, from `api.listen` (loopback for a wildcard address).
fn default_api_url(config: &Config) -> Result<String> {
    let addr = config.api.listen_addr().map_err(anyhow::Error::msg)?;
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let scheme = if config.api.tls().is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{ip}:{}", addr.port()))
}

/// How far back each poll of `--follow` looks again: an event is stamped with the time it
/// happened, which can be a little before events appended ahead of it.
const FOLLOW_LOOKBACK_MS: i64 = 30_000;

/// Poll the API for events not shown yet, until interrupted.
fn follow(
    reader: &mut Reader,
    filter: &EventFilter,
    shown: &[Event],
    out: &mut Output,
    crops: Option<PathBuf>,
) -> Result<()> {
    let mut newest = shown.iter().map(|e| e.time_ms).max().unwrap_or_else(now_ms);
    // Ids shown, with their times, within the look-back window.
    let mut seen: HashMap<u64, i64> = shown.iter().map(|e| (e.id, e.time_ms)).collect();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let from = newest - FOLLOW_LOOKBACK_MS;
        seen.retain(|_, t| *t >= from);
        let f = EventFilter {
            from_ms: Some(filter.from_ms.map_or(from, |f| f.max(from))),
            ..filter.clone()
        };
        let mut new = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = reader.page(&f, cursor.as_deref(), MAX_PAGE)?;
            new.extend(
                page.events
                    .into_iter()
                    .filter(|e| !seen.contains_key(&e.id)),
            );
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        if new.is_empty() {
            continue;
        }
        new.reverse();
        out.print(reader, &new)?;
        if let Some(dir) = &crops {
            write_crops(reader, dir, &new)?;
        }
        for e in &new {
            seen.insert(e.id, e.time_ms);
            newest = newest.max(e.time_ms);
        }
    }
}
