//! Hardware-in-the-loop: facegate's drivers against real Linux kernel drivers, inside the
//! throw-away ARM virtual machine of `scripts/hwvm` (`scripts/hwvm test` cross-builds this file
//! for aarch64 and runs it there):
//!
//! - the door relay through `hw::open_from_config` (`gpio_backend = "cdev"`, chip found by its
//!   label) on gpio-sim, read back from sysfs `sim_gpioN/value`, both polarities;
//! - the door contact and exit button on gpio-sim lines driven through `sim_gpioN/pull`;
//! - the framebuffer status display on vfb `/dev/fb0`, read back and compared with the
//!   reference PNGs of `tests/fixtures/display/`;
//! - the V4L2 camera on vivid `/dev/video0`, and on v4l2loopback `/dev/video10` with the
//!   recorded frames of `frames/` pushed by a writer thread and read back byte for byte.
//!
//! Outside the VM (`FACEGATE_HWVM` unset) every test prints why it is skipped and returns.
//! Run them one at a time (`--test-threads=1`): they share the devices.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use facegate::camera::v4l2::{V4l2Params, V4l2Source};
use facegate::camera::{Frame, FrameSource};
use facegate::hw::config::{DisplayKind, GpioBackend, Level, LockType};
use facegate::hw::display::fbdev::LinuxFramebuffer;
use facegate::hw::{HwConfig, InputEvent, Screen, open_from_config};

/// The label the VM's gpio-sim chip carries (the Raspberry Pi 4's).
const CHIP_LABEL: &str = "pinctrl-bcm2711";
/// The gpio-sim device as scripts/hwvm configures it through configfs.
const SIM_CONFIG: &str = "/sys/kernel/config/gpio-sim/facegate";

fn in_vm() -> bool {
    std::env::var_os("FACEGATE_HWVM").is_some()
}

macro_rules! vm_only {
    () => {
        if !in_vm() {
            skip_note();
            return;
        }
    };
}

/// Says why a test did nothing, on stderr directly: the test harness would swallow an
/// `eprintln!` of a passing test.
fn skip_note() {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: needs the real kernel drivers of the hwvm VM (FACEGATE_HWVM unset); \
         run `scripts/hwvm test`"
    );
}

/// Where the fixtures are: the VM's 9p share, else the source tree.
fn data_dir() -> PathBuf {
    std::env::var_os("FACEGATE_HWVM_SHARE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn fixture(rel: &str) -> PathBuf {
    let share = data_dir();
    // In the share, `tests/fixtures/display` and `frames` are copied to its top level.
    let flat = share.join(Path::new(rel).file_name().unwrap());
    if flat.exists() { flat } else { share.join(rel) }
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// `/sys/devices/platform/gpio-sim.N/gpiochipM/sim_gpio<line>`.
fn sim_line(line: u32) -> PathBuf {
    let dev = read_trim(&Path::new(SIM_CONFIG).join("dev_name"));
    let chip = read_trim(&Path::new(SIM_CONFIG).join("bank0/chip_name"));
    PathBuf::from(format!("/sys/devices/platform/{dev}/{chip}/sim_gpio{line}"))
}

fn sim_value(line: u32) -> bool {
    match read_trim(&sim_line(line).join("value")).as_str() {
        "1" => true,
        "0" => false,
        other => panic!("sim_gpio{line}/value = {other:?}"),
    }
}

/// Drive an input line from outside, as a switch with a pull resistor would.
fn sim_pull(line: u32, high: bool) {
    let path = sim_line(line).join("pull");
    std::fs::write(&path, if high { "pull-up" } else { "pull-down" })
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn gpio_cfg() -> HwConfig {
    HwConfig {
        gpio_backend: GpioBackend::Cdev,
        gpio_chip: CHIP_LABEL.into(),
        display: DisplayKind::None,
        ..HwConfig::default()
    }
}

#[test]
fn relay_line_follows_unlock_and_lock_in_both_polarities() {
    vm_only!();
    const LINE: u32 = 17;
    for (lock_type, active_low) in [
        (LockType::FailSecure, false),
        (LockType::FailSecure, true),
        (LockType::FailSafe, false),
        (LockType::FailSafe, true),
    ] {
        let cfg = HwConfig {
            relay_line: LINE,
            relay_active_low: active_low,
            lock_type,
            unlock_ms: 300,
            ..gpio_cfg()
        };
        // Energised: unlocking for fail-secure, locking for fail-safe. Line level of an
        // energised relay: high, or low for an active-low relay board.
        let level = |unlocked: bool| {
            let energised = unlocked == (lock_type == LockType::FailSecure);
            energised != active_low
        };
        let what = format!("{lock_type:?}, active_low = {active_low}");
        let mut hw = open_from_config(&cfg).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!hw.relay.is_unlocked(), "{what}");
        assert_eq!(sim_value(LINE), level(false), "{what}: opened locked");

        // One grant: unlock for unlock_ms, then lock again; the line is read back from the
        // kernel while it is held.
        let start = Instant::now();
        hw.relay.unlock().unwrap();
        assert_eq!(sim_value(LINE), level(true), "{what}: unlocked");
        sleep(Duration::from_millis(u64::from(hw.unlock_ms)));
        assert_eq!(sim_value(LINE), level(true), "{what}: still unlocked");
        hw.relay.lock().unwrap();
        let pulse = start.elapsed();
        assert_eq!(sim_value(LINE), level(false), "{what}: locked again");
        assert!(pulse >= Duration::from_millis(300), "{what}: {pulse:?}");
        drop(hw);
        eprintln!("relay {what}: pulse {pulse:?}, line read back from gpio-sim");
    }
}

/// Poll until `want` shows up among the events, or fail after a second.
fn wait_for(hw: &mut facegate::hw::Hardware, want: InputEvent) -> Duration {
    let start = Instant::now();
    loop {
        let events = hw.inputs.poll().unwrap();
        if events.contains(&want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "no {want:?} within 1 s (last events {events:?})"
        );
        sleep(Duration::from_millis(5));
    }
}

#[test]
fn door_contact_and_exit_button_read_gpio_sim_pulls() {
    vm_only!();
    const DOOR: u32 = 27;
    const EXIT: u32 = 22;
    // Door closed (contact to ground), exit button released (pulled up).
    sim_pull(DOOR, false);
    sim_pull(EXIT, true);
    let cfg = HwConfig {
        door_contact_line: Some(DOOR),
        door_closed_level: Level::Low,
        exit_button_line: Some(EXIT),
        exit_pressed_level: Level::Low,
        debounce_ms: 30,
        ..gpio_cfg()
    };
    let mut hw = open_from_config(&cfg).unwrap();
    assert_eq!(hw.inputs.door_closed(), Some(true));
    assert_eq!(hw.inputs.poll().unwrap(), vec![]);

    sim_pull(DOOR, true);
    let t = wait_for(&mut hw, InputEvent::DoorOpened);
    assert!(
        t >= Duration::from_millis(30),
        "debounce not applied: {t:?}"
    );
    assert_eq!(hw.inputs.door_closed(), Some(false));
    sim_pull(DOOR, false);
    wait_for(&mut hw, InputEvent::DoorClosed);
    assert_eq!(hw.inputs.door_closed(), Some(true));

    sim_pull(EXIT, false);
    wait_for(&mut hw, InputEvent::ExitPressed);
    sim_pull(EXIT, true);
    sleep(Duration::from_millis(60));
    let events = hw.inputs.poll().unwrap();
    assert!(!events.contains(&InputEvent::ExitPressed), "{events:?}");

    // A high-active exit button on the same line (e.g. a PIR or an opto input).
    drop(hw);
    let cfg = HwConfig {
        exit_pressed_level: Level::High,
        ..cfg
    };
    sim_pull(EXIT, false);
    let mut hw = open_from_config(&cfg).unwrap();
    sim_pull(EXIT, true);
    wait_for(&mut hw, InputEvent::ExitPressed);
}

fn screens() -> Vec<(&'static str, Screen)> {
    vec![
        ("idle", Screen::Idle),
        ("looking", Screen::Looking),
        (
            "granted",
            Screen::Granted {
                name: "Ada Lovelace".into(),
            },
        ),
        (
            "denied",
            Screen::Denied {
                reason: "Face not known".into(),
            },
        ),
        ("offline", Screen::Offline),
        ("camera_lost", Screen::CameraLost),
    ]
}

#[test]
fn framebuffer_display_on_vfb_matches_the_reference_pngs() {
    vm_only!();
    let fb = PathBuf::from("/dev/fb0");
    let format = *LinuxFramebuffer::open(&fb).unwrap().format();
    eprintln!(
        "fb0: {}x{} @ {} bpp, line {} bytes",
        format.width, format.height, format.bits_per_pixel, format.line_length
    );
    // The door loop's path: the display named in [hw], opened by open_from_config.
    let cfg = HwConfig {
        gpio_backend: GpioBackend::Memory,
        display: DisplayKind::Framebuffer,
        framebuffer: fb.clone(),
        ..HwConfig::default()
    };
    let mut hw = open_from_config(&cfg).unwrap();
    let scale = (format.width / 128).min(format.height / 64);
    assert!(scale >= 1);
    let (left, top) = (
        (format.width - 128 * scale) / 2,
        (format.height - 64 * scale) / 2,
    );
    let bpp = format.bytes_per_pixel();
    for (name, screen) in screens() {
        hw.display.show(&screen).unwrap();
        let reference = image::open(fixture("tests/fixtures/display").join(format!("{name}.png")))
            .unwrap()
            .to_luma8();
        assert_eq!(reference.dimensions(), (128, 64));
        // Read the device back, not our memory copy.
        let bytes = std::fs::read(&fb).unwrap();
        let on = format.pack(screen.accent());
        let off = format.pack(embedded_graphics::pixelcolor::Rgb888::new(0, 0, 0));
        let mut lit = 0usize;
        for y in 0..format.height {
            for x in 0..format.width {
                let at = (y * format.line_length) as usize + x as usize * bpp;
                let mut px = [0u8; 4];
                px[..bpp].copy_from_slice(&bytes[at..at + bpp]);
                let got = u32::from_le_bytes(px);
                let inside =
                    x >= left && y >= top && x < left + 128 * scale && y < top + 64 * scale;
                let want = if inside
                    && reference.get_pixel((x - left) / scale, (y - top) / scale).0[0] > 127
                {
                    lit += 1;
                    on
                } else {
                    off
                };
                assert_eq!(got, want, "{name}: pixel ({x}, {y}) of /dev/fb0");
            }
        }
        assert!(lit > 0, "{name}: nothing lit");
        eprintln!("fb0 shows {name}: {lit} lit pixels, equal to {name}.png x{scale}");
    }
}

fn read_frames(cam: &mut V4l2Source, n: usize) -> Vec<Frame> {
    (0..n)
        .map(|_| cam.next_frame().unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn v4l2_camera_on_vivid() {
    vm_only!();
    for (w, h) in [(640, 480), (1280, 720)] {
        let mut cam = V4l2Source::open(&V4l2Params {
            device: "/dev/video0".into(),
            width: w,
            height: h,
            fps: 30,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let what = cam.describe();
        eprintln!("vivid: {what}");
        assert!(what.contains("YUYV"), "{what}");
        let frames = read_frames(&mut cam, 5);
        for f in &frames {
            assert_eq!(f.image.dimensions(), (w, h), "{what}");
        }
        assert!(frames.windows(2).all(|p| p[1].seq > p[0].seq));
        // vivid draws a colour-bar test pattern: not a flat image.
        let first = &frames[0].image;
        let distinct: std::collections::HashSet<[u8; 3]> =
            first.pixels().step_by(97).map(|p| p.0).collect();
        assert!(distinct.len() > 4, "{what}: {} colours", distinct.len());
    }
}

/// Writes RGB24 frames into a v4l2loopback device until dropped.
struct LoopbackWriter {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopbackWriter {
    fn start(path: &str, frames: Vec<image::RgbImage>, every: Duration) -> LoopbackWriter {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use v4l::video::Output;
        let (w, h) = frames[0].dimensions();
        let dev = v4l::prelude::Device::with_path(path).unwrap();
        let fmt = v4l::Format::new(w, h, v4l::FourCC::new(b"RGB3"));
        let set = dev.set_format(&fmt).unwrap();
        assert_eq!((set.width, set.height), (w, h));
        assert_eq!(&set.fourcc.repr, b"RGB3");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let sent = std::sync::Arc::new(AtomicU64::new(0));
        let (stop2, sent2) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let fd = dev.handle().fd();
            let mut i = 0usize;
            while !stop2.load(Ordering::Relaxed) {
                let data = frames[i % frames.len()].as_raw();
                // SAFETY: writes `data.len()` bytes from a live slice to an open descriptor.
                let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
                assert_eq!(
                    n,
                    data.len() as isize,
                    "{}",
                    std::io::Error::last_os_error()
                );
                sent2.fetch_add(1, Ordering::Relaxed);
                i += 1;
                sleep(every);
            }
        });
        LoopbackWriter {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for LoopbackWriter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn v4l2_camera_reads_recorded_frames_from_v4l2loopback() {
    vm_only!();
    let dir = fixture("frames");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "{}", dir.display());
    let frames: Vec<image::RgbImage> = paths
        .iter()
        .map(|p| {
            let img = image::open(p).unwrap().to_rgb8();
            image::imageops::resize(&img, 640, 480, image::imageops::FilterType::Triangle)
        })
        .collect();
    let writer = LoopbackWriter::start("/dev/video10", frames.clone(), Duration::from_millis(40));
    // Before the writer's first frame, the loopback device has no format to read.
    let start = Instant::now();
    while writer.sent() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "writer sent nothing"
        );
        sleep(Duration::from_millis(10));
    }
    let mut cam = V4l2Source::open(&V4l2Params {
        device: "/dev/video10".into(),
        width: 640,
        height: 480,
        fps: 25,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let what = cam.describe();
    eprintln!("v4l2loopback: {what}");
    assert!(what.contains("RGB3"), "{what}");
    let got = read_frames(&mut cam, 12);
    let mut seen = std::collections::BTreeSet::new();
    for f in &got {
        assert_eq!(f.image.dimensions(), (640, 480));
        let which = frames
            .iter()
            .position(|p| p.as_raw() == f.image.as_raw())
            .unwrap_or_else(|| panic!("frame {} is none of the pushed frames", f.seq));
        seen.insert(which);
    }
    assert!(seen.len() >= 2, "only frames {seen:?} came through");
    eprintln!(
        "v4l2loopback: {} frames read, each byte-equal to a pushed frame ({} distinct of {}), writer sent {}",
        got.len(),
        seen.len(),
        frames.len(),
        writer.sent()
    );
}
