//! The camera module end to end: the bundled recorded frames through the configuration, an
//! MJPEG stream from a tiny HTTP server on loopback (decoding, auth, reconnection with the
//! status going Lost then Streaming), and the latest-frame mailbox under a slow consumer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use facegate::camera::{
    Backoff, CameraConfig, CameraError, CameraStatus, Frame, FrameSource, MjpegSource, Reopening,
    SourceKind, StatusWatch, config, open_from_config, spawn_capture,
};
use image::{Rgb, RgbImage};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------- recorded

#[test]
fn bundled_frames_replay_in_order_through_the_config() {
    let cfg = CameraConfig {
        source: SourceKind::Recorded,
        recorded_dir: repo().join("frames"),
        recorded_fps: 200.0,
        recorded_loop: false,
        ..CameraConfig::default()
    };
    let mut src = open_from_config(&cfg).unwrap();
    assert!(src.describe().contains("19 frames"), "{}", src.describe());
    let sizes: Vec<(u32, u32)> = (0..19)
        .map(|_| src.next_frame().unwrap().image.dimensions())
        .collect();
    // Visits: 5 x person A, 3 x no face, 5 x person B, 3 x no face, 3 x two people.
    let (a, none, b, two) = ((512, 640), (600, 400), (282, 640), (640, 376));
    let mut expect = vec![a; 5];
    expect.extend([none; 3]);
    expect.extend([b; 5]);
    expect.extend([none; 3]);
    expect.extend([two; 3]);
    assert_eq!(sizes, expect);
    assert!(matches!(
        src.next_frame(),
        Err(CameraError::EndOfStream { .. })
    ));
}

#[test]
fn default_recorded_dir_is_the_bundled_folder() {
    // Tests run in the package root, where ./frames is the second default location.
    if std::env::var_os("FACEGATE_FRAMES").is_some() {
        eprintln!("SKIPPED: FACEGATE_FRAMES is set");
        return;
    }
    let dir = CameraConfig::default().recorded_dir().unwrap();
    assert_eq!(dir, PathBuf::from("frames"));
    let has_cameras = std::fs::read_dir("/dev")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("video"));
    if has_cameras {
        eprintln!("SKIPPED: this machine has /dev/video* (auto would try it)");
    } else {
        assert_eq!(CameraConfig::default().resolve_kind(), SourceKind::Recorded);
    }
}

#[test]
fn capture_thread_counts_a_corrupt_file_and_goes_on() {
    let dir = std::env::temp_dir().join(format!("facegate-camera-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    RgbImage::from_pixel(16, 16, Rgb([10, 20, 30]))
        .save(dir.join("1.png"))
        .unwrap();
    std::fs::write(dir.join("2.png"), b"\x89PNG\r\n\x1a\n broken").unwrap();
    RgbImage::from_pixel(24, 16, Rgb([10, 20, 30]))
        .save(dir.join("3.png"))
        .unwrap();
    let cfg = CameraConfig {
        source: SourceKind::Recorded,
        recorded_dir: dir.clone(),
        recorded_fps: 20.0,
        recorded_loop: false,
        ..CameraConfig::default()
    };
    let (handle, rx) = spawn_capture(open_from_config(&cfg).unwrap()).unwrap();
    let mut widths = Vec::new();
    let end = loop {
        match rx.recv() {
            Ok(f) => widths.push(f.image.width()),
            Err(e) => break e,
        }
    };
    assert!(matches!(end, CameraError::EndOfStream { .. }), "{end}");
    // The broken file is counted and skipped. (The consumer waits on each frame, so at
    // 20 fps it sees both; a very slow machine may miss the first, never the last.)
    assert!(widths == [16, 24] || widths == [24], "{widths:?}");
    assert_eq!(rx.bad_frames(), 1);
    handle.join();
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- MJPEG server

const BOUNDARY: &str = "facegateframe";

#[derive(Clone, Copy, PartialEq)]
enum Body {
    /// Each part has a Content-Length.
    WithLength,
    /// Parts end at the next boundary line.
    NoLength,
    /// Parts with lengths, in a chunked body.
    Chunked,
}

/// What one connection gets.
#[derive(Clone)]
struct Plan {
    parts: Vec<Vec<u8>>,
    body: Body,
    /// Basic-auth credential ("user:pw") the server insists on.
    auth: Option<&'static str>,
    /// The wait after each part.
    gap: Duration,
    stall: Stall,
    /// The status line of a refusal instead of the stream (e.g. "404 Not Found").
    refuse: Option<&'static str>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            parts: Vec::new(),
            body: Body::WithLength,
            auth: None,
            gap: Duration::from_millis(5),
            stall: Stall::Never,
            refuse: None,
        }
    }
}

/// Where a camera stops sending, keeping the connection open.
#[derive(Clone, Copy, PartialEq)]
enum Stall {
    Never,
    /// Reads the request and never answers.
    BeforeAnswer,
    /// Sends half of the part after this many whole ones.
    MidPart(usize),
}

/// How long a stalled server holds the connection (far longer than the client's timeout).
const STALL_HOLD: Duration = Duration::from_secs(8);

fn jpeg(w: u32, h: u32, colour: [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&RgbImage::from_pixel(w, h, Rgb(colour)))
        .unwrap();
    out
}

/// An HTTP server on a free loopback port that serves `plans`, one per connection, then
/// stops (closing each connection after its parts, as a camera that goes away). It gives up
/// by itself if no client comes for 20 s. Returns the request heads it received.
fn serve(plans: Vec<Plan>) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for plan in plans {
            let deadline = Instant::now() + Duration::from_secs(20);
            let conn = loop {
                match listener.accept() {
                    Ok((c, _)) => break c,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Err(_) => return requests,
                }
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            conn.set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            match answer(conn, &plan) {
                Ok(head) => requests.push(head),
                Err(e) => requests.push(format!("server error: {e}")),
            }
        }
        requests
    });
    (addr, t)
}

fn answer(conn: TcpStream, plan: &Plan) -> std::io::Result<String> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut w = conn;
    if plan.stall == Stall::BeforeAnswer {
        hold(&mut reader);
        return Ok(head);
    }
    if let Some(status) = plan.refuse {
        write!(w, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(head);
    }
    if let Some(cred) = plan.auth {
        let expected = format!("authorization: basic {}", b64(cred.as_bytes())).to_lowercase();
        if !head.to_lowercase().contains(&expected) {
            w.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")?;
            return Ok(head);
        }
    }
    let chunked = plan.body == Body::Chunked;
    write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary={BOUNDARY}\r\n{}\
         Cache-Control: no-cache\r\n\r\n",
        if chunked {
            "Transfer-Encoding: chunked\r\n"
        } else {
            ""
        }
    )?;
    for (i, part) in plan.parts.iter().enumerate() {
        let mut bytes = format!("--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n").into_bytes();
        if plan.body != Body::NoLength {
            bytes.extend_from_slice(format!("Content-Length: {}\r\n", part.len()).as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(part);
        bytes.extend_from_slice(b"\r\n");
        if plan.stall == Stall::MidPart(i) {
            let half = &bytes[..bytes.len() / 2];
            if chunked {
                write!(w, "{:x}\r\n", half.len())?;
                w.write_all(half)?;
                w.write_all(b"\r\n")?;
            } else {
                w.write_all(half)?;
            }
            w.flush()?;
            hold(&mut reader);
            return Ok(head);
        }
        if chunked {
            // Split each part over two chunks, to cross chunk borders mid-frame.
            let (a, b) = bytes.split_at(bytes.len() / 2);
            for c in [a, b] {
                write!(w, "{:x}\r\n", c.len())?;
                w.write_all(c)?;
                w.write_all(b"\r\n")?;
            }
        } else {
            w.write_all(&bytes)?;
        }
        w.flush()?;
        std::thread::sleep(plan.gap);
    }
    if plan.body == Body::NoLength {
        // Without lengths the last part ends at a boundary line.
        write!(w, "--{BOUNDARY}\r\n")?;
    }
    Ok(head)
}

/// Keep the connection open, sending nothing, until the client closes it (or `STALL_HOLD`).
fn hold(reader: &mut BufReader<TcpStream>) {
    let _ = reader.get_ref().set_read_timeout(Some(STALL_HOLD));
    let _ = reader.read(&mut [0u8; 64]);
}

/// Base64 (the test's own, to check the client's).
fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let idx = [
            b[0] >> 2,
            (b[0] & 3) << 4 | b[1] >> 4,
            (b[1] & 15) << 2 | b[2] >> 6,
            b[2] & 63,
        ];
        for (i, x) in idx.iter().enumerate() {
            s.push(if i <= c.len() {
                A[*x as usize] as char
            } else {
                '='
            });
        }
    }
    s
}

const TIMEOUT: Duration = Duration::from_secs(5);

fn assert_colour(f: &Frame, colour: [u8; 3]) {
    let p = f
        .image
        .get_pixel(f.image.width() / 2, f.image.height() / 2)
        .0;
    for c in 0..3 {
        assert!(
            p[c].abs_diff(colour[c]) <= 12,
            "pixel {p:?}, expected about {colour:?}"
        );
    }
}

#[test]
fn mjpeg_frames_arrive_decoded_in_every_body_style() {
    let frames = [
        (64, 48, [200, 40, 40]),
        (32, 24, [40, 200, 40]),
        (80, 60, [40, 40, 200]),
    ];
    let parts: Vec<Vec<u8>> = frames.iter().map(|&(w, h, c)| jpeg(w, h, c)).collect();
    let styles = [Body::WithLength, Body::NoLength, Body::Chunked];
    let plans = styles
        .iter()
        .map(|&body| Plan {
            parts: parts.clone(),
            body,
            auth: None,
            ..Plan::default()
        })
        .collect();
    let (addr, server) = serve(plans);
    let url = format!("http://{addr}/video?stream=1");
    for _ in styles {
        let mut src = MjpegSource::connect(&url, TIMEOUT).unwrap();
        for (i, &(w, h, c)) in frames.iter().enumerate() {
            let f = src.next_frame().unwrap();
            assert_eq!(f.image.dimensions(), (w, h));
            assert_eq!(f.seq, i as u64 + 1);
            assert_colour(&f, c);
        }
        // The server hangs up: a stream error (not a frame error) that says so.
        let e = src.next_frame().unwrap_err();
        assert!(!e.is_frame_error(), "{e:?}");
        assert!(e.to_string().contains("closed the stream"), "{e}");
    }
    let requests = server.join().unwrap();
    assert_eq!(requests.len(), 3);
    assert!(
        requests[0].starts_with("GET /video?stream=1 HTTP/1.1\r\n"),
        "{}",
        requests[0]
    );
    // Header names are case-insensitive (hyper sends them in lower case).
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains(&format!("host: {addr}\r\n")),
        "{}",
        requests[0]
    );
}

#[test]
fn a_damaged_jpeg_costs_one_frame_only() {
    let mut broken = jpeg(40, 30, [1, 2, 3]);
    broken.truncate(broken.len() / 2);
    let plan = Plan {
        parts: vec![jpeg(40, 30, [90, 90, 90]), broken, jpeg(20, 10, [9, 9, 9])],
        body: Body::WithLength,
        auth: None,
        ..Plan::default()
    };
    let (addr, server) = serve(vec![plan]);
    let mut src = MjpegSource::connect(&format!("http://{addr}/"), TIMEOUT).unwrap();
    assert_eq!(src.next_frame().unwrap().image.width(), 40);
    let e = src.next_frame().unwrap_err();
    assert!(e.is_frame_error(), "{e:?}");
    assert!(e.to_string().contains("truncated JPEG"), "{e}");
    assert_eq!(src.next_frame().unwrap().image.width(), 20);
    drop(src);
    server.join().unwrap();
}

#[test]
fn basic_auth_from_the_url_and_clear_refusals() {
    let plan = Plan {
        parts: vec![jpeg(16, 16, [0, 0, 0])],
        body: Body::WithLength,
        auth: Some("door:s3cret"),
        ..Plan::default()
    };
    let (addr, server) = serve(vec![plan.clone(), plan.clone(), plan]);
    let e = MjpegSource::connect(&format!("http://{addr}/s"), TIMEOUT)
        .err()
        .unwrap();
    assert!(e.to_string().contains("wants a user and password"), "{e}");
    assert!(e.is_permanent(), "a password is configuration: not retried");
    let e = MjpegSource::connect(&format!("http://door:wrong@{addr}/s"), TIMEOUT)
        .err()
        .unwrap();
    let m = e.to_string();
    assert!(m.contains("refused the user and password"), "{m}");
    assert!(!m.contains("wrong"), "the password must not be shown: {m}");
    let mut src = MjpegSource::connect(&format!("http://door:s3cret@{addr}/s"), TIMEOUT).unwrap();
    assert_eq!(src.next_frame().unwrap().image.dimensions(), (16, 16));
    assert!(!src.describe().contains("s3cret"), "{}", src.describe());
    drop(src);
    let heads = server.join().unwrap();
    assert_eq!(authorization(&heads[0]), None);
    assert_eq!(
        authorization(&heads[2]).as_deref(),
        Some("Basic ZG9vcjpzM2NyZXQ="),
        "{}",
        heads[2]
    );
}

/// The value of the request's Authorization header.
fn authorization(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    })
}

#[test]
fn a_percent_encoded_password_reaches_the_camera_decoded() {
    let plan = Plan {
        parts: vec![jpeg(16, 16, [0, 0, 0])],
        auth: Some("door:p@ss w:rd"),
        ..Plan::default()
    };
    let (addr, server) = serve(vec![plan]);
    let url = format!("http://door:p%40ss%20w%3Ard@{addr}/s");
    let mut src = MjpegSource::connect(&url, TIMEOUT).unwrap();
    assert_eq!(src.next_frame().unwrap().image.dimensions(), (16, 16));
    assert!(!src.describe().contains("p%40ss"), "{}", src.describe());
    drop(src);
    let heads = server.join().unwrap();
    assert_eq!(
        authorization(&heads[0]),
        Some(format!("Basic {}", b64(b"door:p@ss w:rd")))
    );
}

#[test]
fn answers_that_show_a_wrong_url_are_configuration_errors() {
    let refusal = |status| Plan {
        parts: vec![jpeg(8, 8, [0, 0, 0])],
        refuse: Some(status),
        ..Plan::default()
    };
    let (addr, server) = serve(vec![
        refusal("404 Not Found"),
        refusal("200 OK"),
        refusal("503 Service Unavailable"),
    ]);
    let url = format!("http://{addr}/nothing-here");
    let e = MjpegSource::connect(&url, TIMEOUT).err().unwrap();
    assert!(e.is_permanent(), "{e:?}");
    assert!(e.to_string().contains("no stream at this path"), "{e}");
    // A 200 with no multipart type: a snapshot or a web page.
    let e = MjpegSource::connect(&url, TIMEOUT).err().unwrap();
    assert!(e.is_permanent(), "{e:?}");
    assert!(e.to_string().contains("not an MJPEG stream"), "{e}");
    // A camera still starting, or overloaded: retried.
    let e = MjpegSource::connect(&url, TIMEOUT).err().unwrap();
    assert!(!e.is_permanent(), "{e:?}");
    assert!(e.to_string().contains("503"), "{e}");
    server.join().unwrap();
}

/// The stall tests' timeout.
const SHORT: Duration = Duration::from_millis(600);

/// `f` fails within about `SHORT`: not before it, not long after it.
fn fails_after_the_timeout<T>(f: impl FnOnce() -> Result<T, CameraError>) -> CameraError {
    let start = Instant::now();
    let Err(e) = f() else {
        panic!("no error after {:?}", start.elapsed())
    };
    let took = start.elapsed();
    assert!(
        took >= SHORT - Duration::from_millis(50) && took < SHORT * 5,
        "failed after {took:?}, timeout {SHORT:?}: {e}"
    );
    assert!(!e.is_permanent() && !e.is_frame_error(), "{e:?}");
    assert!(e.to_string().contains("timed out"), "{e}");
    e
}

#[test]
fn a_camera_that_stops_sending_is_a_stream_error_after_the_timeout() {
    let parts: Vec<Vec<u8>> = (0..3).map(|_| jpeg(32, 24, [9, 99, 199])).collect();
    let (addr, server) = serve(vec![
        Plan {
            stall: Stall::BeforeAnswer,
            ..Plan::default()
        },
        Plan {
            parts: parts.clone(),
            stall: Stall::MidPart(1),
            ..Plan::default()
        },
        Plan {
            parts,
            body: Body::Chunked,
            stall: Stall::MidPart(1),
            ..Plan::default()
        },
    ]);
    let url = format!("http://{addr}/video");
    // Connected, but no answer.
    let e = fails_after_the_timeout(|| MjpegSource::connect(&url, SHORT));
    assert!(e.to_string().contains("waiting for the answer"), "{e}");
    // One frame, then half of the next and silence; plain, then chunked.
    for _ in 0..2 {
        let mut src = MjpegSource::connect(&url, SHORT).unwrap();
        assert_eq!(src.next_frame().unwrap().image.dimensions(), (32, 24));
        fails_after_the_timeout(|| src.next_frame());
    }
    // Each stalled connection was closed by the client (the server saw it go).
    let heads = server.join().unwrap();
    assert_eq!(heads.len(), 3, "{heads:?}");
}

#[test]
fn a_healthy_stream_outlives_the_timeout() {
    // Frames every 150 ms for 15 frames: the stream lasts over twice the 1 s timeout, which
    // therefore bounds each wait, not the whole request.
    let timeout = Duration::from_secs(1);
    let n = 15;
    let parts: Vec<Vec<u8>> = (0..n).map(|i| jpeg(16 + i, 16, [0, 0, 0])).collect();
    let (addr, server) = serve(vec![Plan {
        parts,
        body: Body::Chunked,
        gap: Duration::from_millis(150),
        ..Plan::default()
    }]);
    let start = Instant::now();
    let mut src = MjpegSource::connect(&format!("http://{addr}/"), timeout).unwrap();
    for i in 0..n {
        assert_eq!(src.next_frame().unwrap().image.width(), 16 + i);
    }
    let lasted = start.elapsed();
    assert!(lasted > timeout * 2, "the stream lasted only {lasted:?}");
    let e = src.next_frame().unwrap_err();
    assert!(e.to_string().contains("closed the stream"), "{e}");
    server.join().unwrap();
}

#[test]
fn an_https_camera_with_an_untrusted_certificate_is_refused_clearly() {
    use std::sync::Arc as StdArc;
    use tokio_rustls::rustls;
    let dir = std::env::temp_dir().join(format!("facegate-mjpeg-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let config =
        facegate::api::tls::server_config(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ServerConnection::new(StdArc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        // The handshake fails on the client's side: it sends an alert, not a request.
        tls.read(&mut [0u8; 16]).unwrap_err().to_string()
    });
    let url = format!("https://door:s3cret@localhost:{port}/video");
    let e = MjpegSource::connect(&url, TIMEOUT).err().unwrap();
    let m = e.to_string();
    assert!(e.is_permanent(), "{e:?}");
    assert!(m.contains("certificate is not trusted"), "{m}");
    assert!(!m.contains("s3cret"), "{m}");
    let server_saw = server.join().unwrap();
    assert!(server_saw.contains("alert"), "{server_saw}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn nothing_listening_is_a_clear_connect_error() {
    // Bind then drop: a loopback port with nobody on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = MjpegSource::connect(&format!("http://127.0.0.1:{port}/"), TIMEOUT)
        .err()
        .unwrap();
    let m = e.to_string();
    assert!(
        m.contains("cannot connect") && m.contains(&port.to_string()),
        "{m}"
    );
    assert!(!e.is_permanent(), "a camera that is off is retried");
    let e = MjpegSource::connect("rtsp://cam/stream", TIMEOUT)
        .err()
        .unwrap();
    assert!(e.is_permanent() && e.to_string().contains("rtsp"), "{e}");
}

#[test]
fn a_dropped_stream_is_reopened_and_the_status_goes_lost_then_streaming() {
    let first: Vec<Vec<u8>> = (0..3).map(|_| jpeg(64, 48, [200, 0, 0])).collect();
    let second: Vec<Vec<u8>> = (0..3).map(|_| jpeg(32, 24, [0, 200, 0])).collect();
    let (addr, server) = serve(vec![
        Plan {
            parts: first,
            body: Body::WithLength,
            auth: None,
            ..Plan::default()
        },
        Plan {
            parts: second,
            body: Body::NoLength,
            auth: None,
            ..Plan::default()
        },
    ]);
    let url = format!("http://{addr}/stream");
    // The opener notes the status (and its version) at each attempt: the second attempt must
    // find it Lost, the third Lost again two changes later (Streaming in between).
    let watch: Arc<OnceLock<StatusWatch>> = Arc::new(OnceLock::new());
    let seen_at_open: Arc<Mutex<Vec<(u64, CameraStatus)>>> = Arc::default();
    let (w, seen) = (watch.clone(), seen_at_open.clone());
    let reopening = Reopening::new(
        "test stream",
        Backoff::new(Duration::from_millis(200), Duration::from_millis(400)),
        move || {
            if let Some(w) = w.get() {
                seen.lock().unwrap().push(w.versioned());
            }
            MjpegSource::connect(&url, TIMEOUT).map(|s| Box::new(s) as Box<dyn FrameSource>)
        },
    );
    let status = reopening.status();
    watch.set(status.clone()).unwrap();
    let (handle, rx) = spawn_capture(reopening).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sizes = Vec::new();
    let mut last_seq = 0;
    while !sizes.contains(&(32, 24)) {
        assert!(
            Instant::now() < deadline,
            "no frame after the reconnection: {sizes:?}"
        );
        if let Some(f) = rx.recv_timeout(Duration::from_millis(100)).unwrap() {
            assert!(f.seq > last_seq, "frame {} after {last_seq}", f.seq);
            last_seq = f.seq;
            sizes.push(f.image.dimensions());
        }
    }
    assert_eq!(sizes[0], (64, 48));
    server.join().unwrap();
    // The server is gone: the camera is lost again, retrying, until capture stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen_at_open.lock().unwrap().len() < 3 {
        assert!(Instant::now() < deadline, "{:?}", status.get());
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = seen_at_open.lock().unwrap().clone();
    assert_eq!(seen[0], (0, CameraStatus::Starting));
    match &seen[1].1 {
        CameraStatus::Lost {
            reason, attempts, ..
        } => {
            assert!(reason.contains("closed the stream"), "{reason}");
            assert_eq!(*attempts, 1);
        }
        other => panic!("second open found {other:?}, expected Lost"),
    }
    assert_eq!(seen[1].0, 2, "Starting -> Streaming -> Lost");
    assert!(seen[2].1.is_lost(), "{:?}", seen[2]);
    assert_eq!(seen[2].0, seen[1].0 + 2, "Lost -> Streaming -> Lost");
    let start = Instant::now();
    handle.join();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(status.get(), CameraStatus::Stopped);
}

// ---------------------------------------------------------------- mailbox

/// Frames as fast as it can (one every millisecond), each numbered.
struct Fast {
    seq: u64,
}

impl FrameSource for Fast {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        std::thread::sleep(Duration::from_millis(1));
        self.seq += 1;
        Ok(Frame {
            image: RgbImage::new(4, 4),
            captured: Instant::now(),
            seq: self.seq,
        })
    }
    fn describe(&self) -> String {
        "fast".into()
    }
}

#[test]
fn a_slow_consumer_always_gets_the_newest_frame() {
    let (handle, rx) = spawn_capture(Fast { seq: 0 }).unwrap();
    let mut seqs = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        seqs.push(rx.recv().unwrap().seq);
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "an older frame after a newer one: {seqs:?}"
    );
    assert!(
        seqs.windows(2).any(|w| w[1] - w[0] > 1),
        "frames skipped: {seqs:?}"
    );
    handle.join();
    let (dropped, published) = (rx.dropped(), rx.published());
    assert!(dropped > 0, "dropped {dropped} of {published}");
    // Every published frame was taken or dropped, but for at most one still waiting.
    let waiting = rx.try_recv().unwrap().is_some();
    assert_eq!(published, dropped + seqs.len() as u64 + u64::from(waiting));
    assert_eq!(rx.recv().unwrap_err(), CameraError::Stopped);
}

#[test]
fn the_commented_default_config_documents_every_key() {
    for key in [
        "source",
        "device",
        "width",
        "height",
        "fps",
        "recorded_dir",
        "recorded_fps",
        "recorded_loop",
        "mjpeg_url",
        "mjpeg_timeout_ms",
        "reopen_min_ms",
        "reopen_max_ms",
    ] {
        let line = config::DEFAULT_TOML
            .lines()
            .position(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing"));
        let before = config::DEFAULT_TOML.lines().nth(line - 1).unwrap();
        // A comment, or a key sharing the comment block above it (width, height, fps).
        assert!(
            before.starts_with('#') || before.contains(" = "),
            "{key} has no comment above it"
        );
    }
}
