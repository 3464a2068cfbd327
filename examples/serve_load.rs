//! A small load driver for the identify path, to tell the server's cost from the client's and
//! the vision from the HTTP around it (issue #15: why did 2 inference slots not beat 1?).
//!
//! Two modes:
//!
//! - `http`: closed-loop users (no think time) posting real photos to `POST /v1/identify` of a
//!   running `facegate serve`, for each user count in turn. Prints req/s, p50, p95, the status
//!   counts, the server's per-stage means over that run only (from `/metrics`, before and
//!   after), and, with `--server-pid`, the server's CPU time and minor page faults per request
//!   (from `/proc/PID/stat`) next to this driver's own CPU per request.
//! - `vision`: no HTTP at all. `T` threads, each with its own [`Pipeline`] from one shared
//!   [`Models`] (what the API's inference slots do), decode and identify-look photos for the
//!   duration. Prints looks/s, the per-look median and p95, and the process's CPU time and
//!   minor page faults per look: if two pipelines contend (a lock, the allocator, the kernel's
//!   memory map), looks/s does not double from 1 to 2 threads on two idle cores.
//!
//! Usage:
//!   serve_load http --url http://127.0.0.1:18481 --token fgt_… [--images DIR] [--users "1 20"]
//!                   [--duration S] [--enroll N] [--server-pid PID]
//!   serve_load vision [--images DIR] [--threads "1 2"] [--duration S] [--models DIR]
//!
//! `--images DIR`: every `*.jpg` under DIR (one level of sub-folders, LFW's layout), sorted,
//! at most 400; default `../shared/faces/lfw-dev` beside the repository, else
//! `tests/fixtures/faces`. `--enroll N` first enrols the first photo of N people (sub-folders
//! with at least two photos; their other photos are then genuine probes). A measurement, not
//! a test: run it in release (`cargo run --release --example serve_load -- …`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use facegate::vision::{Models, Pipeline, VisionParams, frame};

struct Args {
    mode: String,
    url: String,
    token: String,
    images: Option<PathBuf>,
    counts: Vec<usize>,
    duration: Duration,
    enroll: usize,
    server_pid: Option<u32>,
    models: PathBuf,
}

fn parse() -> Result<Args> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut it = std::env::args().skip(1);
    let mode = it
        .next()
        .context("usage: serve_load http|vision [options] (see examples/serve_load.rs)")?;
    let mut a = Args {
        mode,
        url: "http://127.0.0.1:18481".into(),
        token: std::env::var("FACEGATE_TOKEN").unwrap_or_default(),
        images: None,
        counts: Vec::new(),
        duration: Duration::from_secs(20),
        enroll: 0,
        server_pid: None,
        models: root.join("models"),
    };
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => a.url = value()?,
            "--token" => a.token = value()?,
            "--images" => a.images = Some(value()?.into()),
            "--users" | "--threads" => {
                a.counts = value()?
                    .split_whitespace()
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--duration" => a.duration = Duration::from_secs_f64(value()?.parse()?),
            "--enroll" => a.enroll = value()?.parse()?,
            "--server-pid" => a.server_pid = Some(value()?.parse()?),
            "--models" => a.models = value()?.into(),
            other => bail!("unknown argument {other:?}; see examples/serve_load.rs"),
        }
    }
    if a.counts.is_empty() {
        a.counts = if a.mode == "vision" {
            vec![1, 2]
        } else {
            vec![1, 20]
        };
    }
    Ok(a)
}

/// Photos by person (sub-folder), sorted; at most 400 in all.
fn photos(dir: Option<&Path>) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => {
            let lfw = root.join("../shared/faces/lfw-dev");
            if lfw.is_dir() {
                lfw
            } else {
                root.join("tests/fixtures/faces")
            }
        }
    };
    let jpgs = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("reading {}", d.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
            .collect();
        v.sort();
        Ok(v)
    };
    let mut people = vec![("-".to_owned(), jpgs(&dir)?)];
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    let mut total = people[0].1.len();
    for d in subdirs {
        if total >= 400 {
            break;
        }
        let files = jpgs(&d)?;
        total += files.len();
        let name = d
            .file_name()
            .map_or("-".into(), |n| n.to_string_lossy().into());
        people.push((name, files));
    }
    people.retain(|(_, f)| !f.is_empty());
    if people.is_empty() {
        bail!("no *.jpg under {}", dir.display());
    }
    Ok(people)
}

fn percentile(sorted_ms: &[f64], p: f64) -> f64 {
    if sorted_ms.is_empty() {
        return 0.0;
    }
    let i = ((sorted_ms.len() as f64 - 1.0) * p).round() as usize;
    sorted_ms[i.min(sorted_ms.len() - 1)]
}

/// This process's CPU seconds (user + system) and minor page faults so far.
fn self_usage() -> (f64, u64) {
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_SELF is always valid.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(u.ru_utime) + secs(u.ru_stime), u.ru_minflt as u64)
}

/// Another process's (user CPU s, system CPU s, minor faults) from /proc/PID/stat.
fn proc_usage(pid: u32) -> Option<(f64, f64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state(0) ... minflt(7) ... utime(11) stime(12).
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((
        f.get(11)?.parse::<f64>().ok()? / hz,
        f.get(12)?.parse::<f64>().ok()? / hz,
        f.get(7)?.parse().ok()?,
    ))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> Result<()> {
    let args = parse()?;
    match args.mode.as_str() {
        "vision" => vision(&args),
        "http" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            rt.block_on(http(&args))
        }
        other => bail!("unknown mode {other:?}: http or vision"),
    }
}

fn vision(args: &Args) -> Result<()> {
    let people = photos(args.images.as_deref())?;
    let bytes: Arc<Vec<Vec<u8>>> = Arc::new(
        people
            .iter()
            .flat_map(|(_, f)| f.iter())
            .map(std::fs::read)
            .collect::<Result<_, _>>()?,
    );
    let models = Arc::new(Models::load(&args.models, "blazeface-front-128", None)?);
    println!(
        "vision: {} photos, embedder {}, default settings, {} s per run, {} CPUs",
        bytes.len(),
        models.embedder.name,
        args.duration.as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    for &threads in &args.counts {
        let load = loadavg();
        let stop = Arc::new(AtomicBool::new(false));
        let (cpu0, flt0) = self_usage();
        let t0 = Instant::now();
        let workers: Vec<_> = (0..threads)
            .map(|k| {
                let (models, bytes, stop) = (Arc::clone(&models), Arc::clone(&bytes), stop.clone());
                std::thread::spawn(move || -> Result<Vec<f64>> {
                    let mut p = Pipeline::new(&models, VisionParams::default())?;
                    let mut times = Vec::new();
                    let mut i = k * 7;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let img = frame::decode_image(
                            &bytes[i % bytes.len()],
                            frame::DEFAULT_MAX_PIXELS,
                        )?;
                        std::hint::black_box(p.analyse(&img)?);
                        times.push(t.elapsed().as_secs_f64() * 1e3);
                        i += 1;
                    }
                    Ok(times)
                })
            })
            .collect();
        std::thread::sleep(args.duration);
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.join().map_err(|_| anyhow::anyhow!("worker panicked"))??);
        }
        let wall = t0.elapsed().as_secs_f64();
        let (cpu1, flt1) = self_usage();
        all.sort_by(f64::total_cmp);
        let n = all.len().max(1) as f64;
        println!(
            "RESULT mode=vision threads={threads} looks={} looks_per_s={:.1} p50={:.1}ms p95={:.1}ms cpu_per_look={:.1}ms minflt_per_look={:.0} load_before=\"{load}\" load_after=\"{}\"",
            all.len(),
            all.len() as f64 / wall,
            percentile(&all, 0.5),
            percentile(&all, 0.95),
            (cpu1 - cpu0) * 1e3 / n,
            (flt1 - flt0) as f64 / n,
            loadavg()
        );
    }
    Ok(())
}

/// The server's per-stage (sum s, count) from its Prometheus text.
async fn stages(c: &reqwest::Client, args: &Args) -> Result<BTreeMap<String, (f64, f64)>> {
    let text = c
        .get(format!("{}/metrics", args.url))
        .bearer_auth(&args.token)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in text.lines() {
        let (which, rest) = if let Some(r) = line.strip_prefix("facegate_stage_seconds_sum{") {
            (0, r)
        } else if let Some(r) = line.strip_prefix("facegate_stage_seconds_count{") {
            (1, r)
        } else {
            continue;
        };
        let Some(stage) = rest
            .split('"')
            .nth(1)
            .map(str::to_owned)
            .filter(|_| rest.starts_with("stage="))
        else {
            continue;
        };
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let e = out.entry(stage).or_default();
        if which == 0 { e.0 = value } else { e.1 = value }
    }
    Ok(out)
}

async fn http(args: &Args) -> Result<()> {
    if args.token.is_empty() {
        bail!("give --token (or FACEGATE_TOKEN): an admin token when enrolling, else a viewer one");
    }
    let people = photos(args.images.as_deref())?;
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let mut probes: Vec<Vec<u8>> = Vec::new();
    let mut enrolled = 0;
    for (name, files) in &people {
        if enrolled < args.enroll && name != "-" && files.len() >= 2 {
            let id = name.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            c.post(format!("{}/v1/persons", args.url))
                .bearer_auth(&args.token)
                .json(&serde_json::json!({"id": id, "name": name}))
                .send()
                .await?;
            let r = c
                .post(format!("{}/v1/persons/{id}/faces", args.url))
                .bearer_auth(&args.token)
                .header("Content-Type", "image/jpeg")
                .body(std::fs::read(&files[0])?)
                .send()
                .await?;
            if r.status().is_success() {
                enrolled += 1;
            }
            for f in &files[1..] {
                probes.push(std::fs::read(f)?);
            }
        } else {
            for f in files {
                probes.push(std::fs::read(f)?);
            }
        }
    }
    println!(
        "http: {} probes, {enrolled} people enrolled, {} s per run, {}",
        probes.len(),
        args.duration.as_secs_f64(),
        args.url
    );
    let probes = Arc::new(probes);
    for &users in &args.counts {
        let load = loadavg();
        let before = stages(&c, args).await?;
        let server0 = args.server_pid.and_then(proc_usage);
        let (cpu0, _) = self_usage();
        let t0 = Instant::now();
        let end = t0 + args.duration;
        let tasks: Vec<_> = (0..users)
            .map(|u| {
                let (c, probes, url, token) = (
                    c.clone(),
                    Arc::clone(&probes),
                    format!("{}/v1/identify", args.url),
                    args.token.clone(),
                );
                tokio::spawn(async move {
                    let mut times = Vec::new();
                    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
                    let mut i = u * 13;
                    while Instant::now() < end {
                        let t = Instant::now();
                        let r = c
                            .post(&url)
                            .bearer_auth(&token)
                            .header("Content-Type", "image/jpeg")
                            .body(probes[i % probes.len()].clone())
                            .send()
                            .await;
                        let code = match r {
                            Ok(r) => {
                                let s = r.status().as_u16();
                                let _ = r.bytes().await;
                                s
                            }
                            Err(_) => 0,
                        };
                        times.push(t.elapsed().as_secs_f64() * 1e3);
                        *statuses.entry(code).or_default() += 1;
                        i += 1;
                    }
                    (times, statuses)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for t in tasks {
            let (times, s) = t.await?;
            all.extend(times);
            for (k, v) in s {
                *statuses.entry(k).or_default() += v;
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let (cpu1, _) = self_usage();
        let server1 = args.server_pid.and_then(proc_usage);
        let after = stages(&c, args).await?;
        all.sort_by(f64::total_cmp);
        let n = all.len().max(1) as f64;
        let mut line = format!(
            "RESULT mode=http users={users} requests={} req_per_s={:.1} p50={:.0}ms p95={:.0}ms statuses={statuses:?} client_cpu_per_req={:.1}ms",
            all.len(),
            all.len() as f64 / wall,
            percentile(&all, 0.5),
            percentile(&all, 0.95),
            (cpu1 - cpu0) * 1e3 / n,
        );
        if let (Some((u0, s0, f0)), Some((u1, s1, f1))) = (server0, server1) {
            line += &format!(
                " server_cpu_per_req={:.1}ms (user {:.1} + sys {:.1}) server_cpu_cores={:.2} server_minflt_per_req={:.0}",
                (u1 - u0 + s1 - s0) * 1e3 / n,
                (u1 - u0) * 1e3 / n,
                (s1 - s0) * 1e3 / n,
                (u1 - u0 + s1 - s0) / wall,
                (f1 - f0) as f64 / n
            );
        }
        for (stage, (sum, count)) in &after {
            let (s0, c0) = before.get(stage).copied().unwrap_or_default();
            if count - c0 > 0.0 {
                line += &format!(" {stage}={:.1}ms", (sum - s0) * 1e3 / (count - c0));
            }
        }
        line += &format!(" load_before=\"{load}\" load_after=\"{}\"", loadavg());
        println!("{line}");
    }
    Ok(())
}
