//! `facegate events`: the audit log, filtered, as a table or JSON lines.
//!
//! The log is a sled database, and sled lets one process open it at a time: while `facegate
//! run` or `facegate serve` holds it, this command reads the running facegate's HTTP API
//! instead (`GET /v1/events`) with the token in `FACEGATE_TOKEN`, or says how to.

use std::collections::{BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use facegate::access::audit::MAX_PAGE;
use facegate::access::when::{self, SystemZone, Zone};
use facegate::access::{Action, AuditLog, Event, EventFilter, EventSource, Outcome};
use facegate::config::Config;
use facegate::gallery::now_ms;
use serde::{Deserialize, Serialize};

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
    let zone = SystemZone;
    let now = now_ms();
    let filter = filter_from(&args, now, &zone)?;
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
        return verify(&reader, &audit_path, &zone, args.json);
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
    let mut out = Output::new(&args, &zone);
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
            when::format_offset(now, &zone)
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

fn filter_from(args: &EventsArgs, now: i64, zone: &dyn Zone) -> Result<EventFilter> {
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

fn is_locked(e: &impl std::fmt::Display) -> bool {
    let text = e.to_string();
    text.contains("could not acquire lock") || text.contains("WouldBlock")
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
        Err(e) if is_locked(&e) => {
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
fn verify(reader: &Reader, path: &Path, zone: &dyn Zone, json: bool) -> Result<ExitCode> {
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

/// One line of `--json`: the event as the API gives it, its local time, the person's name.
#[derive(Serialize)]
struct JsonLine<'a> {
    #[serde(flatten)]
    event: &'a Event,
    /// RFC 3339 with the local offset.
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

/// Table or JSON lines.
struct Output<'a> {
    json: bool,
    zone: &'a dyn Zone,
    header_done: bool,
}

impl<'a> Output<'a> {
    fn new(args: &EventsArgs, zone: &'a dyn Zone) -> Output<'a> {
        Output {
            json: args.json,
            zone,
            header_done: false,
        }
    }

    fn print(&mut self, reader: &mut Reader, events: &[Event]) -> Result<()> {
        let ids: BTreeSet<&str> = events.iter().filter_map(|e| e.person.as_deref()).collect();
        let names = reader.names(&ids.into_iter().collect::<Vec<_>>());
        let mut stdout = std::io::stdout().lock();
        if self.json {
            for e in events {
                let line = JsonLine {
                    event: e,
                    time: when::format_rfc3339(e.time_ms, self.zone),
                    name: e
                        .person
                        .as_ref()
                        .and_then(|p| names.get(p))
                        .map(String::as_str),
                };
                writeln!(stdout, "{}", serde_json::to_string(&line)?)?;
            }
            return Ok(stdout.flush()?);
        }
        let rows: Vec<[String; 7]> = events.iter().map(|e| self.row(e, &names)).collect();
        let header = [
            "TIME", "EVENT", "OUTCOME", "PERSON", "SCORE", "QUALITY", "REASON",
        ]
        .map(String::from);
        let mut widths = header.clone().map(|h| h.chars().count());
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        // Follow mode prints a header once; later rows are not re-aligned.
        let lines = if self.header_done {
            rows
        } else {
            std::iter::once(header).chain(rows).collect()
        };
        self.header_done = true;
        for r in lines {
            let mut line = String::new();
            for (i, (c, w)) in r.iter().zip(widths.iter()).enumerate() {
                if i + 1 == r.len() {
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.extend(std::iter::repeat_n(' ', *w - c.chars().count() + 2));
                }
            }
            writeln!(stdout, "{}", line.trim_end())?;
        }
        Ok(stdout.flush()?)
    }

    fn row(&self, e: &Event, names: &HashMap<String, String>) -> [String; 7] {
        let source = e.source.as_str();
        let action = match e.action {
            Action::Access => "",
            Action::Verify => " verify",
            Action::Identify => " identify",
            Action::Enroll => " enroll",
            Action::DeletePerson => " delete person",
            Action::DeleteFace => " delete face",
            Action::Unlock => " unlock",
        };
        let person = match &e.person {
            Some(p) => match names.get(p) {
                Some(n) if n != p => format!("{p} ({n})"),
                _ => p.clone(),
            },
            None => "-".into(),
        };
        let quality = e.quality.map_or("-".into(), |q| {
            format!(
                "eyes {:.0}px yaw {:+.0}° sharp {:.0}",
                q.eye_distance_px, q.yaw_deg, q.sharpness
            )
        });
        let reason = match (&e.reason, e.face_crop) {
            (Some(r), true) => format!("{r} [face crop]"),
            (Some(r), false) => r.clone(),
            (None, true) => "[face crop]".into(),
            (None, false) => "-".into(),
        };
        [
            when::format_local(e.time_ms, self.zone),
            format!("{source}{action}"),
            e.outcome.as_str().to_owned(),
            person,
            e.score.map_or("-".into(), |s| format!("{s:.3}")),
            quality,
            reason,
        ]
    }
}

fn write_crops(reader: &mut Reader, dir: &Path, events: &[Event]) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    for e in events.iter().filter(|e| e.face_crop) {
        let Some(jpeg) = reader.crop(e.id)? else {
            // Deleted by the retention since it was listed.
            continue;
        };
        let path = dir.join(format!("{}.jpg", e.id));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // A face is personal data: readable by the owner only.
            options.mode(0o600);
        }
        options
            .open(&path)
            .and_then(|mut f| f.write_all(&jpeg))
            .with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    Ok(written)
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

/// A small HTTP/1.1 client for the running facegate's API (plain, or HTTPS trusting the
/// certificate in `api.tls_cert`).
struct ApiClient {
    rt: tokio::runtime::Runtime,
    https: bool,
    host: String,
    port: u16,
    token: String,
    tls: Option<tokio_rustls::TlsConnector>,
    base: String,
}

#[derive(Debug)]
struct Response {
    status: u16,
    body: Vec<u8>,
}

impl Response {
    /// The `detail` of an API error body, else the body as text.
    fn detail(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl ApiClient {
    fn new(config: &Config, url: &str) -> Result<ApiClient> {
        let bad =
            || anyhow!("API address {url:?}: write it as http://HOST:PORT or https://HOST:PORT");
        let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad());
        };
        let hostport = rest.trim_end_matches('/');
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => {
                (h.to_owned(), p.parse::<u16>().map_err(|_| bad())?)
            }
            _ if hostport.is_empty() || hostport.contains('/') => return Err(bad()),
            _ => (hostport.to_owned(), if https { 443 } else { 80 }),
        };
        let token = std::env::var(TOKEN_ENV)
            .map(|t| t.trim().to_owned())
            .unwrap_or_default();
        if token.is_empty() {
            bail!(
                "reading through the API needs a token: set {TOKEN_ENV} to the viewer or admin token"
            );
        }
        let tls = if https {
            Some(tls_connector(config)?)
        } else {
            None
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(ApiClient {
            rt,
            https,
            host,
            port,
            token,
            tls,
            base: format!("{}://{hostport}", if https { "https" } else { "http" }),
        })
    }

    fn get(&self, path: &str) -> Result<Response> {
        let url = format!("{}{path}", self.base);
        self.rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(15), self.request(path)).await
            })
            .map_err(|_| anyhow!("GET {url}: no answer within 15 s"))?
            .with_context(|| format!("GET {url}"))
    }

    async fn request(&self, path: &str) -> Result<Response> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::net::TcpStream::connect((host, self.port)).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: Bearer {}\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n",
            self.host, self.port, self.token
        );
        let mut raw = Vec::new();
        match (&self.tls, self.https) {
            (Some(tls), true) => {
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| anyhow!("{host}: {e}"))?;
                let mut s = tls.connect(name, tcp).await?;
                s.write_all(req.as_bytes()).await?;
                // A server may close without close_notify after Connection: close.
                match s.read_to_end(&mut raw).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            _ => {
                let mut s = tcp;
                s.write_all(req.as_bytes()).await?;
                s.read_to_end(&mut raw).await?;
            }
        }
        parse_response(&raw)
    }

    fn events(&self, filter: &EventFilter, cursor: Option<&str>, limit: usize) -> Result<Page> {
        let mut q = vec![format!("limit={}", limit.clamp(1, MAX_PAGE))];
        if let Some(t) = filter.from_ms {
            q.push(format!("from_ms={t}"));
        }
        if let Some(t) = filter.until_ms {
            q.push(format!("until_ms={t}"));
        }
        if let Some(p) = &filter.person {
            q.push(format!("person={}", percent_encode(p)));
        }
        if let Some(o) = filter.outcome {
            q.push(format!("outcome={}", o.as_str()));
        }
        if let Some(s) = filter.source {
            q.push(format!("source={}", s.as_str()));
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", percent_encode(c)));
        }
        let r = self.get(&format!("/v1/events?{}", q.join("&")))?;
        match r.status {
            200 => serde_json::from_slice(&r.body).context("the API's event page"),
            401 => bail!(
                "the API at {} refused the token in {TOKEN_ENV} (401: {})",
                self.base,
                r.detail()
            ),
            s => bail!("the API at {} answered {s}: {}", self.base, r.detail()),
        }
    }

    fn person_name(&self, id: &str) -> Result<Option<String>> {
        let r = self.get(&format!("/v1/persons/{}", percent_encode(id)))?;
        match r.status {
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&r.body)?;
                Ok(v["person"]["name"].as_str().map(str::to_owned))
            }
            404 => Ok(None),
            s => bail!("{s}: {}", r.detail()),
        }
    }

    fn face_crop(&self, id: u64) -> Result<Option<Vec<u8>>> {
        let r = self.get(&format!("/v1/events/{id}/face"))?;
        match r.status {
            200 => Ok(Some(r.body)),
            404 => Ok(None),
            403 => bail!(
                "face crops are read with the admin token only; {TOKEN_ENV} holds the viewer token"
            ),
            s => bail!(
                "face crop of event {id}: the API answered {s}: {}",
                r.detail()
            ),
        }
    }
}

fn tls_connector(config: &Config) -> Result<tokio_rustls::TlsConnector> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let Some((cert, _)) = config.api.tls() else {
        bail!(
            "an https:// API address needs api.tls_cert in the configuration: its certificate \
             is the one trusted"
        );
    };
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
    {
        let c = c.with_context(|| format!("reading {}", cert.display()))?;
        roots
            .add(c)
            .with_context(|| format!("{}: not a usable certificate", cert.display()))?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS client configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Status and body of a raw HTTP/1.1 response (Content-Length, chunked, or until close).
fn parse_response(raw: &[u8]) -> Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("incomplete HTTP response ({} bytes)", raw.len()))?;
    let head = std::str::from_utf8(&raw[..end]).context("HTTP response head")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP response"))?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse().ok();
            }
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = rest[pos..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| anyhow!("truncated chunked body"))?;
            let size_text = std::str::from_utf8(&rest[pos..pos + line_end])?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| anyhow!("bad chunk size {size_text:?}"))?;
            pos += line_end + 2;
            if size == 0 {
                break;
            }
            let chunk = rest
                .get(pos..pos + size)
                .ok_or_else(|| anyhow!("truncated chunked body"))?;
            body.extend_from_slice(chunk);
            pos += size + 2;
        }
        body
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| anyhow!("truncated body ({} of {n} bytes)", rest.len()))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_with_length_chunked_and_close() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"abcde"[..]));
        let r = parse_response(b"HTTP/1.1 200 OK\r\n\r\nuntil close").unwrap();
        assert_eq!(r.body, b"until close");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
