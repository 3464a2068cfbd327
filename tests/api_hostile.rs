//! The API against a hostile client: oversize person fields and bodies, an image that is small
//! on the wire but huge decoded, ids outside the documented set, and slow, idle or too many
//! connections (the real `facegate serve` under a 1024 open-file limit).

mod api_support;
mod common;
mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use api_support::{Options, Server};
use serde_json::{Value, json};

async fn status_and_body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A JSON request over a raw connection: the body is written by a thread of its own while the
/// response is read, so a server that answers before reading it all (an early 413 closes the
/// connection) is seen answering, not as a broken pipe of the client's (hyper's client gives
/// up writing and reports only that).
async fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let (addr, method, path, token) = (
        addr.to_owned(),
        method.to_owned(),
        path.to_owned(),
        token.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let body = serde_json::to_vec(&body).unwrap();
        let mut stream = TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = writer.write_all(&body);
        });
        let mut response = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => response.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&response);
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().to_owned())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                if length.is_some_and(|n| rest.len() >= n) {
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        (status, serde_json::from_str(rest).unwrap_or(Value::Null))
    })
    .await
    .unwrap()
}

/// A valid 16-bit RGBA PNG of 6300x6300 (39.7 MP, under the 40 MP pixel limit): a few hundred
/// kB on the wire, about 317 MB decoded.
fn png_16bit_bomb() -> Vec<u8> {
    let dir = common::tmpdir("png16");
    let path = dir.join("bomb.png");
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut enc = png::Encoder::new(file, 6300, 6300);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Sixteen);
        enc.set_compression(png::Compression::Fast);
        let mut w = enc.write_header().unwrap().into_stream_writer().unwrap();
        let row = vec![0u8; 6300 * 8];
        for _ in 0..6300 {
            w.write_all(&row).unwrap();
        }
        w.finish().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_fields_bodies_and_decoded_images_are_refused() {
    let s = Server::start("hostile-limits", Options::default()).await;
    let create = |body: Value| {
        s.post("/v1/persons")
            .bearer_auth(&s.admin)
            .json(&body)
            .send()
    };
    // A normal person first.
    let (st, _) = status_and_body(
        create(json!({"id": "alice", "name": "Alice"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 201);

    let window = |days: Vec<&str>| json!({"days": days, "from": "08:00", "until": "18:00"});
    let cases: Vec<(&str, Value, u16)> = vec![
        (
            "5 MB of metadata",
            json!({"name": "M", "metadata": {"blob": "x".repeat(5 << 20)}}),
            413,
        ),
        (
            "9 kB of metadata",
            json!({"name": "M", "metadata": {"blob": "x".repeat(9000)}}),
            422,
        ),
        (
            "100k schedule windows",
            json!({"name": "S", "schedule": vec![window(vec!["mon"]); 100_000]}),
            413,
        ),
        (
            "33 schedule windows",
            json!({"name": "S", "schedule": vec![window(vec!["mon"]); 33]}),
            422,
        ),
        (
            "a days list of 1M entries",
            json!({"name": "D", "schedule": [window(vec!["mon"; 1_000_000])]}),
            413,
        ),
        (
            "a day twice",
            json!({"name": "D", "schedule": [window(vec!["mon", "mon"])]}),
            422,
        ),
        ("id \".\"", json!({"id": ".", "name": "Dot"}), 422),
        ("id \"..\"", json!({"id": "..", "name": "Dots"}), 422),
        ("id NUL byte", json!({"id": "\u{0}", "name": "Nul"}), 422),
        ("id CON", json!({"id": "CON", "name": "Con"}), 422),
        ("id nul", json!({"id": "nul", "name": "Nul"}), 422),
        (
            "id lpt1.txt",
            json!({"id": "lpt1.txt", "name": "Printer"}),
            422,
        ),
        ("name NUL byte", json!({"id": "zed", "name": "\u{0}"}), 422),
    ];
    let addr = s.base.trim_start_matches("http://").to_owned();
    for (what, body, expected) in cases {
        let (st, b) = if expected == 413 {
            raw_request(&addr, "POST", "/v1/persons", &s.admin, body).await
        } else {
            status_and_body(create(body).await.expect(what)).await
        };
        assert_eq!(st, expected, "{what}: {b}");
        assert!(
            b["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: says why: {b}"
        );
        s.assert_alive().await;
    }
    // An 8 MB PATCH is refused before it is read, the person unchanged.
    let (st, b) = raw_request(
        &addr,
        "PATCH",
        "/v1/persons/alice",
        &s.admin,
        json!({"metadata": {"blob": "x".repeat(8 << 20)}}),
    )
    .await;
    assert_eq!(st, 413, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("65536"), "{b}");
    s.assert_alive().await;
    let (st, b) = status_and_body(
        s.get("/v1/persons/alice")
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(b["person"]["metadata"], json!({}), "unchanged: {b}");

    // The 16-bit PNG: refused from its header (413), before ~317 MB are allocated.
    let bomb = png_16bit_bomb();
    assert!(bomb.len() < 2 << 20, "small on the wire: {}", bomb.len());
    let before = peak_rss();
    for path in ["/v1/persons/alice/faces", "/v1/identify"] {
        let (st, b) = status_and_body(
            s.post(path)
                .bearer_auth(&s.admin)
                .header("content-type", "image/png")
                .body(bomb.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(st, 413, "{path}: {b}");
        assert_eq!(b["error"], "image_too_large", "{path}: {b}");
        assert!(
            b["detail"].as_str().unwrap().contains("MB decoded"),
            "{path}: {b}"
        );
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 150 << 20,
        "peak memory grew by {} MB while refusing the bomb",
        grown >> 20
    );
    s.stop().await;
}

/// Read until the server closes the connection; how long it took (`None`: still open at
/// `limit`).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// The child runs with at most 1024 open files, like a unit without LimitNOFILE.
fn limit_files(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let dir = common::tmpdir("hostile-slow");
    let mut served = serve_support::serve(
        &dir,
        &dir.join("gallery"),
        "header_timeout_s = 2",
        limit_files,
    );
    served.wait_healthy().await;
    // Half a request's headers, then nothing.
    let mut slow = TcpStream::connect(&served.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Nothing at all.
    let mut idle = TcpStream::connect(&served.addr).unwrap();
    // One request, then idle on the kept-alive connection.
    let mut kept = TcpStream::connect(&served.addr).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    for (what, s) in [
        ("slow headers", &mut slow),
        ("idle", &mut idle),
        ("kept-alive idle", &mut kept),
    ] {
        let took = closed_within(s, Duration::from_secs(15));
        assert!(
            took.is_some(),
            "{what}: the connection is still open 15 s later (timeout 2 s)"
        );
    }
    let r = reqwest::get(served.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_under_1100_idle_connections_at_a_1024_file_limit() {
    // This process holds the client ends: make sure it may.
    // SAFETY: getrlimit/setrlimit on this process.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    let dir = common::tmpdir("hostile-many");
    // A long header timeout: the idle connections are not closed by it during the test.
    let mut served = serve_support::serve(
        &dir,
        &dir.join("gallery"),
        "header_timeout_s = 300\nmax_connections = 256",
        limit_files,
    );
    served.wait_healthy().await;
    let mut idle = Vec::new();
    for i in 0..1100 {
        match TcpStream::connect(&served.addr) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    // Give the server a moment to accept them all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for _ in 0..5 {
        let r = http
            .get(served.url("/healthz"))
            .send()
            .await
            .expect("/healthz answers with 1,100 idle connections open");
        assert_eq!(r.status(), 200);
    }
    // The oldest idle connections were closed to make room.
    let closed = idle
        .iter_mut()
        .take(50)
        .map(|s| closed_within(s, Duration::from_millis(300)).is_some())
        .filter(|closed| *closed)
        .count();
    assert!(closed > 0, "none of the oldest idle connections was closed");
    assert!(
        served.child.try_wait().unwrap().is_none(),
        "the server is still running"
    );
    drop(idle);
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}
