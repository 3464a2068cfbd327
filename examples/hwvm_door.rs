//! The whole door on real kernel drivers: the driver of `scripts/hwvm door`, run inside the
//! throw-away ARM VM of `scripts/hwvm` next to the aarch64 `facegate` it tests.
//!
//! It starts `facegate --config FILE run` as a child process and plays the world around it:
//! - the camera: recorded frames pushed into v4l2loopback (`[camera] device`) by a writer
//!   thread, as a scene that can be switched (an empty scene, the enrolled person, a stranger);
//! - the door wiring: the gpio-sim lines of `[hw]`, the relay read back from the kernel
//!   (`sim_gpioN/value`), the door contact and exit button driven through `sim_gpioN/pull`;
//! - the status display: `/dev/fb0` read back and compared, pixel for pixel, with each screen
//!   drawn by facegate's own drawing code for the device's pixel format.
//!
//! The checks: the enrolled person opens the relay for `unlock_ms` and the display shows the
//! welcome screen with their name; a stranger does not open it and the display shows
//! "Not recognised"; the exit button opens it; facegate stops cleanly on SIGINT; its JSON lines
//! and its audit log hold exactly those decisions and unlocks. It prints one line per check
//! and `HWVM DOOR: PASS` or `HWVM DOOR: FAIL` with the run time, and exits 0 only on PASS.
//!
//! Usage (see scripts/hwvm): hwvm_door --facegate BIN --config FILE --frames DIR
//!     [--person-id ID] [--person-name NAME] [--timeout-s S]
//! The person must be enrolled in the configured gallery before (`facegate gallery add`).
//! Outside the VM (`FACEGATE_HWVM` unset) it says so and exits 77.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, sleep};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use facegate::access::audit::{Action, AuditLog, EventFilter, Outcome};
use facegate::config::Config;
use facegate::hw::Screen;
use facegate::hw::config::{Level, LockType};
use facegate::hw::display::fbdev::{FbCanvas, FbFormat, LinuxFramebuffer, draw_on_canvas};
use image::RgbImage;
use serde_json::Value;

/// The gpio-sim device as scripts/hwvm configures it through configfs.
const SIM_CONFIG: &str = "/sys/kernel/config/gpio-sim/facegate";
/// Size of the frames pushed into v4l2loopback.
const FRAME_W: u32 = 640;
const FRAME_H: u32 = 480;
/// The pushed frame rate.
const PUSH_EVERY: Duration = Duration::from_millis(100);
/// How long the stranger stays in front of the camera after the first refusal, so that more
/// of their frames are judged while the relay is watched.
const STRANGER_EXTRA: Duration = Duration::from_secs(8);

struct Args {
    facegate: PathBuf,
    config: PathBuf,
    frames: PathBuf,
    person_id: String,
    person_name: String,
    timeout: Duration,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        facegate: PathBuf::new(),
        config: PathBuf::new(),
        frames: PathBuf::new(),
        person_id: "person_a".into(),
        person_name: "Person A".into(),
        timeout: Duration::from_secs(600),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--facegate" => a.facegate = value()?.into(),
            "--config" => a.config = value()?.into(),
            "--frames" => a.frames = value()?.into(),
            "--person-id" => a.person_id = value()?,
            "--person-name" => a.person_name = value()?,
            "--timeout-s" => {
                a.timeout = Duration::from_secs(value()?.parse().context("--timeout-s")?)
            }
            other => bail!(
                "unknown argument {other}; usage: hwvm_door --facegate BIN --config FILE \
                 --frames DIR [--person-id ID] [--person-name NAME] [--timeout-s S]"
            ),
        }
    }
    for (flag, v) in [
        ("--facegate", &a.facegate),
        ("--config", &a.config),
        ("--frames", &a.frames),
    ] {
        if v.as_os_str().is_empty() {
            bail!("{flag} is required");
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    if std::env::var_os("FACEGATE_HWVM").is_none() {
        println!(
            "SKIPPED: hwvm_door drives gpio-sim, v4l2loopback and vfb inside the VM of \
             scripts/hwvm (FACEGATE_HWVM unset); run `scripts/hwvm door`"
        );
        return ExitCode::from(77);
    }
    let start = Instant::now();
    let mut checks = Checks::default();
    let mut seen = None;
    let outcome = parse_args().and_then(|args| run(&args, &mut checks, start, &mut seen));
    if let Err(e) = &outcome {
        checks.fail("the run itself", format!("{e:#}"));
    }
    if checks.failed() > 0
        && let Some(timeline) = seen
    {
        println!("hwvm_door: relay and fb0 changes seen (time since start):");
        for (t, s) in timeline.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            println!("  {:>8.3} s  {s:?}", t.as_secs_f64());
        }
    }
    let took = start.elapsed().as_secs_f64();
    let failed = checks.failed();
    if failed == 0 {
        println!(
            "HWVM DOOR: PASS ({} checks) in {took:.1} s",
            checks.list.len()
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "HWVM DOOR: FAIL ({failed} of {} checks failed) in {took:.1} s",
            checks.list.len()
        );
        ExitCode::FAILURE
    }
}

#[derive(Default)]
struct Checks {
    list: Vec<(String, bool)>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl Into<String>, detail: impl std::fmt::Display) {
        let what = what.into();
        println!("{} {what}: {detail}", if ok { "  ok  " } else { "  FAIL" });
        self.list.push((what, ok));
    }

    fn fail(&mut self, what: &str, detail: impl std::fmt::Display) {
        self.check(false, what, detail);
    }

    fn failed(&self) -> usize {
        self.list.iter().filter(|(_, ok)| !ok).count()
    }
}

/// The gpio-sim lines, read and driven through sysfs.
#[derive(Clone)]
struct Sim {
    dir: PathBuf,
}

fn read_trim(path: &Path) -> Result<String> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .trim()
        .to_owned())
}

impl Sim {
    fn open() -> Result<Sim> {
        let config = Path::new(SIM_CONFIG);
        let dev = read_trim(&config.join("dev_name"))?;
        let chip = read_trim(&config.join("bank0/chip_name"))?;
        Ok(Sim {
            dir: PathBuf::from(format!("/sys/devices/platform/{dev}/{chip}")),
        })
    }

    fn value(&self, line: u32) -> Result<bool> {
        match read_trim(&self.dir.join(format!("sim_gpio{line}/value")))?.as_str() {
            "1" => Ok(true),
            "0" => Ok(false),
            other => bail!("sim_gpio{line}/value reads {other:?}"),
        }
    }

    /// Drive an input line from outside, as a switch with a pull resistor would.
    fn pull(&self, line: u32, high: bool) -> Result<()> {
        let path = self.dir.join(format!("sim_gpio{line}/pull"));
        std::fs::write(&path, if high { "pull-up" } else { "pull-down" })
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Images of `dir` whose file name contains `part`, in name order, made into camera frames of
/// the pushed size: cut to 4:3 (the top of a portrait photo, where its face is; the middle of a
/// wide one) and scaled. Letterboxing the portrait photos instead would shrink person B's face
/// to 63 px of a 640 px frame, which blazeface-front-128 does not find.
fn scene(dir: &Path, part: &str) -> Result<Arc<Vec<RgbImage>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jpg")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(part))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no *{part}*.jpg in {}", dir.display());
    }
    let mut frames = Vec::new();
    for p in paths {
        let img = image::open(&p)
            .with_context(|| format!("decoding {}", p.display()))?
            .to_rgb8();
        let (w, h) = img.dimensions();
        let (x, y, cw, ch) =
            if u64::from(w) * u64::from(FRAME_H) < u64::from(h) * u64::from(FRAME_W) {
                (0, 0, w, (w * FRAME_H / FRAME_W).max(1))
            } else {
                let cw = (h * FRAME_W / FRAME_H).max(1);
                ((w - cw) / 2, 0, cw, h)
            };
        let cut = image::imageops::crop_imm(&img, x, y, cw, ch).to_image();
        frames.push(image::imageops::resize(
            &cut,
            FRAME_W,
            FRAME_H,
            image::imageops::FilterType::Triangle,
        ));
    }
    Ok(Arc::new(frames))
}

/// Pushes the current scene's frames into a v4l2loopback device, round and round.
struct Writer {
    scene: Arc<Mutex<Arc<Vec<RgbImage>>>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(device: &Path, first: Arc<Vec<RgbImage>>) -> Result<Writer> {
        use v4l::video::Output;
        let dev = v4l::prelude::Device::with_path(device)
            .with_context(|| format!("opening {}", device.display()))?;
        let fmt = v4l::Format::new(FRAME_W, FRAME_H, v4l::FourCC::new(b"RGB3"));
        let set = dev
            .set_format(&fmt)
            .with_context(|| format!("setting RGB3 {FRAME_W}x{FRAME_H} on {}", device.display()))?;
        if (set.width, set.height, set.fourcc.repr) != (FRAME_W, FRAME_H, *b"RGB3") {
            bail!(
                "{} took {}x{} {} instead of RGB3 {FRAME_W}x{FRAME_H}",
                device.display(),
                set.width,
                set.height,
                set.fourcc
            );
        }
        let scene = Arc::new(Mutex::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let (scene2, stop2, sent2, error2) = (
            Arc::clone(&scene),
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&error),
        );
        let thread = std::thread::spawn(move || {
            let fd = dev.handle().fd();
            let mut i = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                let frames = Arc::clone(&scene2.lock().unwrap_or_else(|p| p.into_inner()));
                let data = frames[i % frames.len()].as_raw();
                // SAFETY: writes `data.len()` bytes from a live slice to an open descriptor.
                let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
                if n != data.len() as isize {
                    let e = std::io::Error::last_os_error();
                    *error2.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("write to v4l2loopback returned {n}: {e}"));
                    return;
                }
                sent2.fetch_add(1, Ordering::Relaxed);
                i += 1;
                sleep(PUSH_EVERY);
            }
        });
        Ok(Writer {
            scene,
            stop,
            sent,
            error,
            thread: Some(thread),
        })
    }

    fn show(&self, frames: &Arc<Vec<RgbImage>>) {
        *self.scene.lock().unwrap_or_else(|p| p.into_inner()) = Arc::clone(frames);
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the monitor saw change, with the time since the start.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Relay { unlocked: bool },
    Screen(String),
    Error(String),
}

type Timeline = Arc<Mutex<Vec<(Duration, Seen)>>>;

/// Samples the relay line (every 2 ms) and the framebuffer (every ~25 ms) and records every
/// change. The framebuffer is named after the screen it equals pixel for pixel, else "other".
struct Monitor {
    timeline: Timeline,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    fn start(
        sim: Sim,
        relay_line: u32,
        unlocked_level: bool,
        fb: &Path,
        screens: Vec<(String, Vec<u8>)>,
        t0: Instant,
    ) -> Result<Monitor> {
        let file = File::open(fb).with_context(|| format!("opening {}", fb.display()))?;
        let len = screens.first().map_or(0, |(_, b)| b.len());
        let timeline: Timeline = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (tl, stop2) = (Arc::clone(&timeline), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; len];
            let (mut relay, mut screen): (Option<bool>, Option<String>) = (None, None);
            let mut last_fb: Option<Instant> = None;
            let record = |what: Seen| {
                tl.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((t0.elapsed(), what));
            };
            while !stop2.load(Ordering::Relaxed) {
                match sim.value(relay_line) {
                    Ok(level) => {
                        let unlocked = level == unlocked_level;
                        if relay != Some(unlocked) {
                            relay = Some(unlocked);
                            record(Seen::Relay { unlocked });
                        }
                    }
                    Err(e) => record(Seen::Error(format!("relay: {e:#}"))),
                }
                if last_fb.is_none_or(|t| t.elapsed() >= Duration::from_millis(25)) {
                    last_fb = Some(Instant::now());
                    let name = match file.read_exact_at(&mut buf, 0) {
                        Ok(()) => screens.iter().find(|(_, want)| *want == buf).map_or_else(
                            || {
                                if buf.iter().all(|b| *b == 0) {
                                    "blank".to_owned()
                                } else {
                                    "other".to_owned()
                                }
                            },
                            |(n, _)| n.clone(),
                        ),
                        Err(e) => format!("fb read error: {e}"),
                    };
                    if screen.as_ref() != Some(&name) {
                        screen = Some(name.clone());
                        record(Seen::Screen(name));
                    }
                }
                sleep(Duration::from_millis(2));
            }
        });
        Ok(Monitor {
            timeline,
            stop,
            thread: Some(thread),
        })
    }

    fn events(&self) -> Vec<(Duration, Seen)> {
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The first change equal to `what` at or after `since`.
    fn find(&self, since: Duration, what: &Seen) -> Option<Duration> {
        self.events()
            .into_iter()
            .find(|(t, s)| *t >= since && s == what)
            .map(|(t, _)| t)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `facegate run` as a child process, its JSON lines collected with their arrival time.
struct Door {
    child: Child,
    lines: Arc<Mutex<Vec<(Duration, Value)>>>,
    reader: Option<JoinHandle<()>>,
}

impl Door {
    fn start(bin: &Path, config: &Path, t0: Instant) -> Result<Door> {
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("no stdout pipe"))?;
        let lines: Arc<Mutex<Vec<(Duration, Value)>>> = Arc::default();
        let lines2 = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("  facegate> {line}");
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    lines2
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((t0.elapsed(), v));
                }
            }
        });
        Ok(Door {
            child,
            lines,
            reader: Some(reader),
        })
    }

    fn records(&self) -> Vec<(Duration, Value)> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fails when facegate has exited.
    fn alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("facegate exited early ({status})"),
        }
    }

    /// SIGINT (what Ctrl-C and systemd's KillSignal would send), then wait.
    fn stop(&mut self, limit: Duration) -> Result<std::process::ExitStatus> {
        if self.child.try_wait()?.is_none() {
            let pid = libc::pid_t::try_from(self.child.id()).context("pid")?;
            // SAFETY: kill(2) on the pid of a child we own and have not reaped.
            if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
                bail!("kill -INT {pid}: {}", std::io::Error::last_os_error());
            }
        }
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return Ok(status);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                bail!("facegate did not stop within {limit:?} of SIGINT (killed)");
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn kind(v: &Value) -> (&str, &str) {
    match v["kind"].as_str() {
        Some("decision") => ("decision", v["verdict"]["verdict"].as_str().unwrap_or("")),
        Some("door") => ("door", v["event"]["event"].as_str().unwrap_or("")),
        _ => ("", ""),
    }
}

/// Poll `ready` every 20 ms until it gives a value, failing after `limit` or as soon as
/// facegate or the frame writer dies.
fn wait_for<T>(
    door: &mut Door,
    writer: &Writer,
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = ready() {
            return Ok(v);
        }
        door.alive()
            .with_context(|| format!("waiting for {what}"))?;
        if let Some(e) = writer.error() {
            bail!("waiting for {what}: the frame writer stopped: {e}");
        }
        if start.elapsed() > limit {
            bail!("{what}: not within {:.0} s", limit.as_secs_f64());
        }
        sleep(Duration::from_millis(20));
    }
}

/// Poll `ready` every 20 ms for at most `limit`.
fn poll<T>(limit: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        sleep(Duration::from_millis(20));
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn run(args: &Args, checks: &mut Checks, t0: Instant, seen: &mut Option<Timeline>) -> Result<()> {
    let config = Config::load(&args.config)?;
    let hw = &config.hw;
    let exit_line = hw
        .exit_button_line
        .ok_or_else(|| anyhow!("{}: hw.exit_button_line is not set", args.config.display()))?;
    let device = PathBuf::from(&config.camera.device);
    // The relay line's level while the door is unlocked: the relay is energised to unlock a
    // fail-secure lock, and an active-low board energises on a low line.
    let unlocked_level = (hw.lock_type == LockType::FailSecure) != hw.relay_active_low;
    let unlock = Duration::from_millis(u64::from(hw.unlock_ms));

    // The wiring at rest: door closed, exit button released.
    let sim = Sim::open()?;
    if let Some(contact) = hw.door_contact_line {
        sim.pull(contact, hw.door_closed_level == Level::High)?;
    }
    let released_high = hw.exit_pressed_level == Level::Low;
    sim.pull(exit_line, released_high)?;

    // Every screen this run can show, drawn by facegate's drawing code for fb0's format.
    let format: FbFormat = *LinuxFramebuffer::open(&hw.framebuffer)?.format();
    println!(
        "hwvm_door: {} is {}x{} at {} bpp; relay line {} unlocks {}; exit button line {exit_line}",
        hw.framebuffer.display(),
        format.width,
        format.height,
        format.bits_per_pixel,
        hw.relay_line,
        if unlocked_level { "high" } else { "low" },
    );
    let granted = Screen::Granted {
        name: args.person_name.clone(),
    };
    let denied = Screen::Denied {
        reason: "Not recognised".into(),
    };
    let mut screens = Vec::new();
    for s in [
        Screen::Idle,
        Screen::Looking,
        granted,
        denied,
        Screen::CameraLost,
        Screen::Offline,
    ] {
        let mut canvas = FbCanvas::new(format).map_err(|e| anyhow!(e))?;
        draw_on_canvas(&mut canvas, &s);
        screens.push((s.slug().to_owned(), canvas.data().to_vec()));
    }
    let monitor = Monitor::start(
        sim.clone(),
        hw.relay_line,
        unlocked_level,
        &hw.framebuffer,
        screens,
        t0,
    )?;
    *seen = Some(Arc::clone(&monitor.timeline));

    let empty = scene(&args.frames, "no_face")?;
    let enrolled = scene(&args.frames, "person_a")?;
    let stranger = scene(&args.frames, "person_b")?;
    // The writer goes first: a v4l2loopback device has no format to read before it.
    let writer = Writer::start(&device, Arc::clone(&empty))?;
    let mut door = Door::start(&args.facegate, &args.config, t0)?;
    let limit = args.timeout;

    // 0. Ready: models loaded, camera read, the idle screen on the framebuffer.
    let idle = Seen::Screen("idle".into());
    let ready = wait_for(&mut door, &writer, limit, "the idle screen on fb0", || {
        monitor.find(Duration::ZERO, &idle)
    })?;
    checks.check(
        true,
        "door ready",
        format!("idle screen on fb0 {} after start", secs(ready)),
    );

    // 1. The enrolled person: relay pulse of unlock_ms, welcome screen with their name.
    let t_a = t0.elapsed();
    writer.show(&enrolled);
    let open = Seen::Relay { unlocked: true };
    let closed = Seen::Relay { unlocked: false };
    let opened = wait_for(&mut door, &writer, limit, "the relay to unlock", || {
        monitor.find(t_a, &open)
    })?;
    checks.check(
        true,
        "enrolled person unlocks the relay",
        format!(
            "line {} at the unlock level {} after their frames came",
            hw.relay_line,
            secs(opened - t_a)
        ),
    );
    let relocked = wait_for(
        &mut door,
        &writer,
        unlock + Duration::from_secs(10),
        "the relay to lock again",
        || monitor.find(opened, &closed),
    )?;
    let pulse = relocked - opened;
    // Read from outside through gpio-sim: the sampler shares the VM's emulated CPUs with the
    // inference and was seen to stall ~40 ms under host load (1.46 s for a 1,501 ms pulse by
    // facegate's own records), so one stall is allowed here; the exact length is checked on
    // facegate's door records below.
    checks.check(
        pulse + Duration::from_millis(100) >= unlock && pulse <= unlock + Duration::from_secs(1),
        "relay pulse lasts hw.unlock_ms",
        format!("{} (unlock_ms {})", secs(pulse), hw.unlock_ms),
    );
    let welcome = Seen::Screen("granted".into());
    let shown = poll(Duration::from_secs(5), || monitor.find(t_a, &welcome));
    checks.check(
        shown.is_some(),
        "fb0 shows the welcome screen",
        match shown {
            Some(t) => format!(
                "equal pixel for pixel to WELCOME / {:?}, {} after their frames came",
                args.person_name,
                secs(t - t_a)
            ),
            None => "never seen".into(),
        },
    );

    // Nobody in front of the camera, until the display is idle again.
    writer.show(&empty);
    let t_idle = t0.elapsed();
    let back = wait_for(&mut door, &writer, limit, "the idle screen again", || {
        monitor.find(t_idle, &idle)
    })?;
    checks.check(
        true,
        "display back to idle",
        format!("{} after the person left", secs(back - t_idle)),
    );

    // 2. A stranger: refused on the display, the relay stays locked.
    let t_b = t0.elapsed();
    writer.show(&stranger);
    let refused = Seen::Screen("denied".into());
    let denied_at = wait_for(&mut door, &writer, limit, "the refusal screen", || {
        monitor.find(t_b, &refused)
    })?;
    checks.check(
        true,
        "fb0 shows the refusal for a stranger",
        format!(
            "equal pixel for pixel to DENIED / \"Not recognised\", {} after their frames came",
            secs(denied_at - t_b)
        ),
    );
    let until = t0.elapsed() + STRANGER_EXTRA;
    wait_for(&mut door, &writer, limit, "", || {
        (t0.elapsed() >= until).then_some(())
    })?;
    let t_b_end = t0.elapsed();
    let during_b: Vec<Seen> = monitor
        .events()
        .into_iter()
        .filter(|(t, _)| *t >= t_b && *t <= t_b_end)
        .map(|(_, s)| s)
        .collect();
    checks.check(
        !during_b.contains(&open),
        "stranger does not unlock the relay",
        format!(
            "line {} never at the unlock level during {} of their frames",
            hw.relay_line,
            secs(t_b_end - t_b)
        ),
    );
    checks.check(
        !during_b.contains(&welcome),
        "no welcome screen for the stranger",
        format!("screens seen: {during_b:?}"),
    );

    // 3. The exit button: press, release, the relay unlocks.
    writer.show(&empty);
    let t_c = t0.elapsed();
    sim.pull(exit_line, !released_high)?;
    sleep(Duration::from_millis(300));
    sim.pull(exit_line, released_high)?;
    let exit_open = wait_for(
        &mut door,
        &writer,
        Duration::from_secs(30),
        "the exit button's unlock",
        || monitor.find(t_c, &open),
    )?;
    checks.check(
        true,
        "exit button unlocks the relay",
        format!("{} after the press", secs(exit_open - t_c)),
    );
    wait_for(
        &mut door,
        &writer,
        unlock + Duration::from_secs(10),
        "the relay to lock after the exit button",
        || monitor.find(exit_open, &closed),
    )?;

    // 4. A clean stop on SIGINT.
    let status = door.stop(Duration::from_secs(60))?;
    checks.check(
        status.success(),
        "facegate stops cleanly on SIGINT",
        format!(
            "{status}; {} frames pushed into {}",
            writer.sent(),
            device.display()
        ),
    );
    drop(writer);
    let events = monitor.events();
    drop(monitor);
    let rises = events.iter().filter(|(_, s)| *s == open).count();
    checks.check(
        rises == 2,
        "relay unlocked exactly twice (face, exit button)",
        format!("{rises} unlocks read back from gpio-sim"),
    );

    // 5. The JSON lines.
    let records = door.records();
    let decisions: Vec<&Value> = records
        .iter()
        .map(|(_, v)| v)
        .filter(|v| kind(v).0 == "decision")
        .collect();
    let grants: Vec<&str> = decisions
        .iter()
        .filter(|v| kind(v).1 == "granted")
        .map(|v| v["verdict"]["person"].as_str().unwrap_or("?"))
        .collect();
    checks.check(
        grants == [args.person_id.as_str()],
        "JSON: one grant, for the enrolled person",
        format!("granted {grants:?}"),
    );
    let unknown: Vec<f64> = decisions
        .iter()
        .filter(|v| kind(v).1 == "unknown")
        .filter_map(|v| v["verdict"]["score"].as_f64())
        .collect();
    let denied_n = decisions.iter().filter(|v| kind(v).1 == "denied").count();
    checks.check(
        !unknown.is_empty() && denied_n == 0,
        "JSON: the stranger is an unknown face",
        format!(
            "{} unknown (best scores {unknown:.3?}), {denied_n} denied",
            unknown.len()
        ),
    );
    let unlocks: Vec<String> = records
        .iter()
        .map(|(_, v)| v)
        .filter(|v| kind(v) == ("door", "unlocked"))
        .map(|v| {
            let by = &v["event"]["by"];
            match by["person"].as_str() {
                Some(p) => format!("{}:{p}", by["by"].as_str().unwrap_or("?")),
                None => by["by"].as_str().unwrap_or("?").to_owned(),
            }
        })
        .collect();
    let want = [format!("face:{}", args.person_id), "exit_button".to_owned()];
    let locks = records
        .iter()
        .filter(|(_, v)| kind(v) == ("door", "locked"))
        .count();
    checks.check(
        unlocks == want && locks == 2,
        "JSON: door unlocked by face then by exit button, locked after each",
        format!("unlocked {unlocks:?}, locked {locks}"),
    );
    // facegate's own clock: its door records are written after each GPIO write.
    let door_ms: Vec<(&str, i64)> = records
        .iter()
        .map(|(_, v)| v)
        .filter(|v| kind(v).0 == "door")
        .filter_map(|v| Some((kind(v).1, v["at_ms"].as_i64()?)))
        .collect();
    let held = door_ms
        .iter()
        .position(|(k, _)| *k == "unlocked")
        .and_then(|i| {
            let (_, at) = door_ms[i];
            let (_, lock_at) = door_ms[i + 1..].iter().find(|(k, _)| *k == "locked")?;
            Some(lock_at - at)
        });
    checks.check(
        held.is_some_and(|ms| ms >= i64::from(hw.unlock_ms)),
        "JSON: the face unlock held hw.unlock_ms by facegate's records",
        format!(
            "{held:?} ms from unlocked to locked (unlock_ms {})",
            hw.unlock_ms
        ),
    );
    let latency = records
        .iter()
        .map(|(_, v)| v)
        .find(|v| kind(v) == ("door", "unlocked"))
        .and_then(|v| v["latency_ms"].as_f64());
    checks.check(
        latency.is_some(),
        "JSON: frame capture to relay latency",
        format!("{latency:?} ms (emulated CPU)"),
    );

    // 6. The audit log facegate kept (it has stopped, so the sled database is free).
    let audit_path = config.api.audit_path(&config.gallery.path());
    let key = facegate::gallery::load_device_key(&config.gallery)?;
    let audit = AuditLog::open(&audit_path, config.api.audit_max_events, &key)?;
    let all = audit.query(&EventFilter::default(), None, 1000)?.events;
    let count = |action: Action, outcome: Outcome, person: Option<&str>, reason: Option<&str>| {
        all.iter()
            .filter(|e| {
                e.action == action
                    && e.outcome == outcome
                    && person.is_none_or(|p| e.person.as_deref() == Some(p))
                    && reason.is_none_or(|r| e.reason.as_deref() == Some(r))
            })
            .count()
    };
    let id = Some(args.person_id.as_str());
    let audit_ok = count(Action::Access, Outcome::Granted, id, None) == 1
        && count(Action::Access, Outcome::Granted, None, None) == 1
        && count(Action::Access, Outcome::Unknown, None, None) == unknown.len()
        && count(Action::Unlock, Outcome::Unlocked, id, Some("face")) == 1
        && count(Action::Unlock, Outcome::Unlocked, None, Some("exit button")) == 1
        && count(Action::Unlock, Outcome::Unlocked, None, None) == 2;
    checks.check(
        audit_ok,
        "audit log: the grant, the unknown faces and both unlocks",
        format!(
            "{} events in {}: {}",
            all.len(),
            audit_path.display(),
            all.iter()
                .rev()
                .map(|e| format!(
                    "{:?}/{:?}{}{}",
                    e.action,
                    e.outcome,
                    e.person
                        .as_deref()
                        .map(|p| format!(" {p}"))
                        .unwrap_or_default(),
                    e.reason
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    // Audit order: the grant is logged no later than the unlock it caused.
    let at = |action: Action, outcome: Outcome| {
        all.iter()
            .find(|e| e.action == action && e.outcome == outcome && e.person.as_deref() == id)
            .map(|e| e.time_ms)
    };
    let (grant_t, unlock_t) = (
        at(Action::Access, Outcome::Granted),
        at(Action::Unlock, Outcome::Unlocked),
    );
    checks.check(
        matches!((grant_t, unlock_t), (Some(g), Some(u)) if g <= u),
        "audit log: the grant is logged before the unlock it caused",
        format!("grant at {grant_t:?} ms, unlock at {unlock_t:?} ms (Unix)"),
    );
    Ok(())
}
