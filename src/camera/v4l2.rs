//! V4L2 capture (USB and CSI cameras) through the `v4l` crate: memory-mapped streaming, the
//! format negotiated in the order MJPEG, YUYV, GREY, each frame converted to RGB (and so copied
//! out of the driver's buffer) as soon as it is dequeued.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::Type;
use v4l::capability::Flags;
use v4l::io::traits::CaptureStream;
use v4l::prelude::{Device, MmapStream};
use v4l::video::Capture;
use v4l::{Format, FourCC};

use super::{CameraError, Frame, FrameSource, MAX_FRAME_PIXELS};
use crate::vision::PixelFormat;
use crate::vision::frame::to_rgb;

/// What to open and what to ask of it.
#[derive(Debug, Clone, PartialEq)]
pub struct V4l2Params {
    /// A device path, a (part of a) card name, or empty for the first usable device.
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Buffers the driver fills in turn.
const BUFFERS: u32 = 4;
/// A camera that delivers no frame for this long is taken as lost.
const DEQUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Formats facegate reads, in order of preference: MJPEG first (least USB bandwidth, so the
/// full frame rate at 640x480 and above), then YUYV, then grey; RGB24 last (rare on cameras).
const PREFERENCE: [([u8; 4], PixelFormat); 5] = [
    (*b"MJPG", PixelFormat::Mjpeg),
    (*b"JPEG", PixelFormat::Mjpeg),
    (*b"YUYV", PixelFormat::Yuyv),
    (*b"GREY", PixelFormat::Grey),
    (*b"RGB3", PixelFormat::Rgb24),
];

/// The pixel format facegate reads a fourcc as, if it reads it at all.
pub fn pixel_format(fourcc: [u8; 4]) -> Option<PixelFormat> {
    PREFERENCE
        .iter()
        .find(|(f, _)| *f == fourcc)
        .map(|(_, p)| *p)
}

/// The format to ask for among those a device offers: the first of MJPEG, YUYV, GREY (then
/// RGB24) that it offers, whatever order the driver lists them in.
pub fn choose_format(offered: &[[u8; 4]]) -> Option<([u8; 4], PixelFormat)> {
    PREFERENCE
        .iter()
        .find(|(f, _)| offered.contains(f))
        .copied()
}

/// Which device a configured name means, among `(path, card name)` pairs of capture devices:
/// a path is taken as is; otherwise an exact card name (ignoring case) wins over a part of
/// one; empty means the first device.
pub fn match_device<'a>(wanted: &str, devices: &'a [(PathBuf, String)]) -> Option<&'a Path> {
    if wanted.is_empty() {
        return devices.first().map(|(p, _)| p.as_path());
    }
    let w = wanted.to_lowercase();
    devices
        .iter()
        .find(|(_, card)| card.to_lowercase() == w)
        .or_else(|| {
            devices
                .iter()
                .find(|(_, card)| card.to_lowercase().contains(&w))
        })
        .map(|(p, _)| p.as_path())
}

/// Whether a configured device names a path rather than a card.
fn is_path(device: &str) -> bool {
    device.starts_with('/')
}

/// Rows of `row_bytes` packed tight, from a buffer whose rows are `stride` bytes apart.
pub fn unpad_rows(data: &[u8], stride: usize, row_bytes: usize, height: usize) -> Cow<'_, [u8]> {
    if stride <= row_bytes || height == 0 {
        return Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(row_bytes * height);
    for row in data.chunks(stride).take(height) {
        out.extend_from_slice(&row[..row_bytes.min(row.len())]);
    }
    Cow::Owned(out)
}

fn fourcc_text(f: [u8; 4]) -> String {
    f.iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// `/dev/video*` nodes, sorted by number.
fn video_nodes() -> Vec<PathBuf> {
    let mut nodes: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name();
                    let n = name.to_str()?.strip_prefix("video")?.parse::<u32>().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// A device node opened and queried.
struct Probe {
    device: Device,
    card: String,
    offered: Vec<[u8; 4]>,
}

fn probe(path: &Path) -> Result<Probe, CameraError> {
    let fail = |what: &str, e: std::io::Error| CameraError::Device {
        device: path.display().to_string(),
        reason: format!("{what}: {e}"),
    };
    let device = Device::with_path(path).map_err(|e| fail("cannot open", e))?;
    let caps = device
        .query_caps()
        .map_err(|e| fail("not a V4L2 device (QUERYCAP failed)", e))?;
    if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
        return Err(CameraError::Device {
            device: path.display().to_string(),
            reason: format!("{} is not a video capture device", caps.card),
        });
    }
    let offered = device
        .enum_formats()
        .map_err(|e| fail("cannot list formats", e))?
        .iter()
        .map(|d| d.fourcc.repr)
        .collect();
    Ok(Probe {
        device,
        card: caps.card,
        offered,
    })
}

/// A video device node as found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub path: PathBuf,
    /// The driver's card name ("USB2.0 Camera"); empty when the node could not be queried.
    pub card: String,
    /// Formats offered, as fourcc text ("MJPG", "YUYV").
    pub formats: Vec<String>,
    /// A capture device offering a format facegate reads.
    pub usable: bool,
    /// Why the node could not be queried (permissions, not a capture device).
    pub error: Option<String>,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{} ({e})", self.path.display()),
            None if self.usable => write!(f, "{} {:?}", self.path.display(), self.card),
            None => write!(
                f,
                "{} {:?} (offers {}, which facegate does not read)",
                self.path.display(),
                self.card,
                if self.formats.is_empty() {
                    "no format".to_string()
                } else {
                    self.formats.join(", ")
                }
            ),
        }
    }
}

/// Every `/dev/video*` node, queried (nothing is streamed).
pub fn list_devices() -> Vec<DeviceInfo> {
    video_nodes()
        .into_iter()
        .map(|path| match probe(&path) {
            Ok(p) => DeviceInfo {
                usable: choose_format(&p.offered).is_some(),
                formats: p.offered.iter().map(|f| fourcc_text(*f)).collect(),
                card: p.card,
                path,
                error: None,
            },
            Err(e) => DeviceInfo {
                error: Some(match e {
                    CameraError::Device { reason, .. } => reason,
                    other => other.to_string(),
                }),
                path,
                card: String::new(),
                formats: Vec::new(),
                usable: false,
            },
        })
        .collect()
}

/// Capture devices that offer a format facegate reads, as "path (card)".
pub fn usable_devices() -> Vec<String> {
    video_nodes()
        .into_iter()
        .filter_map(|p| {
            let probe = probe(&p).ok()?;
            choose_format(&probe.offered)?;
            Some(format!("{} ({})", p.display(), probe.card))
        })
        .collect()
}

pub struct V4l2Source {
    path: PathBuf,
    card: String,
    width: u32,
    height: u32,
    /// Bytes between rows in the driver's buffer (0 for compressed formats).
    stride: u32,
    format: PixelFormat,
    fourcc: [u8; 4],
    fps: Option<f64>,
    seq: u64,
    /// Always `Some` until dropped (see the `Drop` impl). Dropped before the device: the
    /// stream stops streaming and unmaps its buffers first.
    stream: Option<MmapStream<'static>>,
    _device: Device,
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        // The v4l crate panics if stopping the stream fails for any reason but an unplugged
        // device; a camera being closed must not take the capture thread down with it.
        if let Some(stream) = self.stream.take()
            && std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(stream))).is_err()
        {
            tracing::warn!(device = %self.path.display(), "stopping the V4L2 stream failed");
        }
    }
}

impl V4l2Source {
    /// Open the configured camera, negotiate format, size and rate, and start streaming.
    pub fn open(params: &V4l2Params) -> Result<V4l2Source, CameraError> {
        let (path, probe) = find(&params.device)?;
        let device_name = path.display().to_string();
        let fail = |what: &str, e: std::io::Error| CameraError::Device {
            device: device_name.clone(),
            reason: format!("{what}: {e}"),
        };
        let (fourcc, _) = choose_format(&probe.offered).ok_or_else(|| CameraError::NoFormat {
            device: format!("{device_name} ({})", probe.card),
            offered: probe.offered.iter().map(|f| fourcc_text(*f)).collect(),
        })?;
        let device = probe.device;
        let asked = Format::new(params.width, params.height, FourCC::new(&fourcc));
        let got = device
            .set_format(&asked)
            .map_err(|e| fail("cannot set the format", e))?;
        let format = pixel_format(got.fourcc.repr).ok_or_else(|| CameraError::Device {
            device: device_name.clone(),
            reason: format!(
                "asked for {}, the driver set {}, which facegate does not read",
                fourcc_text(fourcc),
                fourcc_text(got.fourcc.repr)
            ),
        })?;
        let fps = match device.set_params(&v4l::video::capture::Parameters::with_fps(
            params.fps.max(1),
        )) {
            Ok(p) if p.interval.numerator > 0 && p.interval.denominator > 0 => {
                Some(f64::from(p.interval.denominator) / f64::from(p.interval.numerator))
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(device = %device_name, error = %e, "cannot set the frame rate; using the camera's");
                None
            }
        };
        tracing::info!(
            device = %device_name,
            card = %probe.card,
            format = %fourcc_text(got.fourcc.repr),
            width = got.width,
            height = got.height,
            fps = ?fps,
            asked = %format!("{}x{} @ {} fps", params.width, params.height, params.fps),
            "V4L2 camera format"
        );
        let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, BUFFERS)
            .map_err(|e| fail("cannot map capture buffers", e))?;
        stream.set_timeout(DEQUEUE_TIMEOUT);
        Ok(V4l2Source {
            path,
            card: probe.card,
            width: got.width,
            height: got.height,
            stride: got.stride,
            format,
            fourcc: got.fourcc.repr,
            fps,
            seq: 0,
            stream: Some(stream),
            _device: device,
        })
    }
}

/// The device a configured name means, opened and probed.
fn find(wanted: &str) -> Result<(PathBuf, Probe), CameraError> {
    if is_path(wanted) {
        let path = PathBuf::from(wanted);
        return probe(&path).map(|p| (path, p));
    }
    let mut found = Vec::new();
    let mut probes = Vec::new();
    for path in video_nodes() {
        match probe(&path) {
            // With no name given, only devices offering a readable format are candidates
            // (a Raspberry Pi has codec and ISP nodes that capture nothing useful).
            Ok(p) if !wanted.is_empty() || choose_format(&p.offered).is_some() => {
                found.push(format!("{} ({})", path.display(), p.card));
                probes.push((path, p));
            }
            Ok(p) => found.push(format!("{} ({}, no usable format)", path.display(), p.card)),
            Err(e) => tracing::debug!(error = %e, "skipping video node"),
        }
    }
    let cards: Vec<(PathBuf, String)> = probes
        .iter()
        .map(|(path, p)| (path.clone(), p.card.clone()))
        .collect();
    let chosen = match_device(wanted, &cards).map(Path::to_path_buf);
    match chosen.and_then(|c| probes.into_iter().find(|(p, _)| *p == c)) {
        Some(hit) => Ok(hit),
        None => Err(CameraError::NoDevice {
            wanted: if wanted.is_empty() {
                String::new()
            } else {
                format!("named {wanted:?}")
            },
            found,
        }),
    }
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        let path = &self.path;
        let stream = self.stream.as_mut().ok_or_else(|| CameraError::Device {
            device: path.display().to_string(),
            reason: "stream closed".into(),
        })?;
        let (buf, meta) = stream.next().map_err(|e| CameraError::Device {
            device: path.display().to_string(),
            reason: if e.kind() == std::io::ErrorKind::TimedOut {
                format!("no frame for {} s", DEQUEUE_TIMEOUT.as_secs())
            } else {
                format!("capture failed: {e}")
            },
        })?;
        let captured = Instant::now();
        let used = match meta.bytesused as usize {
            0 => buf.len(),
            n => n.min(buf.len()),
        };
        let data = &buf[..used];
        let bpp = match self.format {
            PixelFormat::Yuyv => 2,
            PixelFormat::Grey => 1,
            PixelFormat::Rgb24 => 3,
            PixelFormat::Mjpeg => 0,
        };
        let packed = unpad_rows(
            data,
            self.stride as usize,
            self.width as usize * bpp,
            self.height as usize,
        );
        let image = to_rgb(
            &packed,
            self.width,
            self.height,
            self.format,
            MAX_FRAME_PIXELS,
        )
        .map_err(|e| CameraError::BadFrame {
            what: format!("{} frame {}", self.path.display(), meta.sequence),
            reason: e.to_string(),
        })?;
        self.seq += 1;
        Ok(Frame {
            image,
            captured,
            seq: self.seq,
        })
    }

    fn describe(&self) -> String {
        let fps = self
            .fps
            .map(|f| format!(" @ {f:.0} fps"))
            .unwrap_or_default();
        format!(
            "V4L2 {} ({}) {}x{} {}{fps}",
            self.path.display(),
            self.card,
            self.width,
            self.height,
            fourcc_text(self.fourcc)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_preference_is_mjpeg_yuyv_grey() {
        let c = |offered: &[&[u8; 4]]| {
            let v: Vec<[u8; 4]> = offered.iter().map(|f| **f).collect();
            choose_format(&v)
        };
        assert_eq!(
            c(&[b"YUYV", b"GREY", b"MJPG"]),
            Some((*b"MJPG", PixelFormat::Mjpeg))
        );
        assert_eq!(
            c(&[b"GREY", b"YUYV", b"H264"]),
            Some((*b"YUYV", PixelFormat::Yuyv))
        );
        assert_eq!(c(&[b"H264", b"GREY"]), Some((*b"GREY", PixelFormat::Grey)));
        assert_eq!(c(&[b"JPEG", b"YUYV"]), Some((*b"JPEG", PixelFormat::Mjpeg)));
        assert_eq!(c(&[b"RGB3", b"GREY"]), Some((*b"GREY", PixelFormat::Grey)));
        assert_eq!(c(&[b"pRAA", b"RGB3"]), Some((*b"RGB3", PixelFormat::Rgb24)));
        // Bayer-only (a Raspberry Pi's raw sensor node), H.264-only, nothing: no format.
        assert_eq!(c(&[b"pRAA", b"BA81"]), None);
        assert_eq!(c(&[b"H264"]), None);
        assert_eq!(c(&[]), None);
        assert_eq!(pixel_format(*b"NV12"), None);
        assert_eq!(pixel_format(*b"YUYV"), Some(PixelFormat::Yuyv));
    }

    #[test]
    fn devices_match_by_exact_then_partial_name() {
        let devs = vec![
            (
                PathBuf::from("/dev/video0"),
                "HD Pro Webcam C920 Extra".to_string(),
            ),
            (PathBuf::from("/dev/video2"), "c920".to_string()),
            (PathBuf::from("/dev/video4"), "USB2.0 PC CAMERA".to_string()),
        ];
        assert_eq!(
            match_device("C920", &devs),
            Some(Path::new("/dev/video2")),
            "exact (case-insensitive) beats partial"
        );
        assert_eq!(
            match_device("pc camera", &devs),
            Some(Path::new("/dev/video4"))
        );
        assert_eq!(match_device("", &devs), Some(Path::new("/dev/video0")));
        assert_eq!(match_device("Logitech", &devs), None);
        assert_eq!(match_device("", &[]), None);
        assert!(is_path("/dev/video0") && !is_path("C920"));
    }

    #[test]
    fn padded_rows_are_packed() {
        // 2 rows of 3 bytes, stride 4.
        let data = [1, 2, 3, 0, 4, 5, 6, 0];
        assert_eq!(&*unpad_rows(&data, 4, 3, 2), &[1, 2, 3, 4, 5, 6]);
        assert!(matches!(unpad_rows(&data, 0, 3, 2), Cow::Borrowed(_)));
        assert!(matches!(unpad_rows(&data, 4, 4, 2), Cow::Borrowed(_)));
        assert_eq!(fourcc_text(*b"MJ\0G"), "MJ?G");
    }

    #[test]
    fn a_missing_device_is_a_clear_error() {
        let e = match V4l2Source::open(&V4l2Params {
            device: "/dev/video-facegate-test-none".into(),
            width: 640,
            height: 480,
            fps: 30,
        }) {
            Ok(_) => panic!("opened a device that does not exist"),
            Err(e) => e,
        };
        assert!(
            e.to_string().contains("/dev/video-facegate-test-none"),
            "{e}"
        );
    }
}
