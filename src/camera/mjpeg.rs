//! An IP camera's MJPEG stream: one HTTP GET over plain `http://`, answered with a
//! `multipart/x-mixed-replace` body whose parts are JPEG frames.
//!
//! A small client of its own over `std::net::TcpStream`: HTTP/1.1 with `Connection: close`,
//! identity or chunked bodies, basic auth from the URL's `user:password@`. Parts are read by
//! their `Content-Length` when they have one, else up to the next boundary line.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::{CameraError, Frame, FrameSource, MAX_FRAME_PIXELS};
use crate::vision::frame::decode_image;

/// Largest response head or part head, in bytes.
const MAX_HEAD: u64 = 16 << 10;
/// Largest frame accepted (a 4K JPEG is a few MB).
const MAX_PART: usize = 32 << 20;
/// Bytes of non-part data skipped, looking for a boundary, before giving up.
const MAX_SKIP: usize = 1 << 20;

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with '/'.
    pub path: String,
    /// `user:password` from the URL, if any.
    pub userinfo: Option<String>,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{scheme}:// is not supported, only http:// (plain HTTP)"
                ));
            }
            None => return Err(format!("{text:?} is not a URL (expected http://host/path)")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(percent_decode(u)), h),
            None => (None, authority),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("unclosed '[' in the host of {text:?}"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(format!("junk after the host in {text:?}")),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(format!("no host in {text:?}"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("bad port {p:?} in {text:?}"))?,
            None => 80,
        };
        Ok(Url {
            host: host.to_string(),
            port,
            path,
            userinfo,
        })
    }

    /// The URL without its password, for logs and messages.
    pub fn redacted(&self) -> String {
        let user = match &self.userinfo {
            Some(u) => format!("{}:***@", u.split(':').next().unwrap_or_default()),
            None => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{user}{host}:{}{}", self.port, self.path)
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (for the basic-auth header).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One line (up to and including '\n'), at most `limit` bytes; empty at end of input.
fn read_line<R: BufRead>(r: &mut R, limit: u64) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.by_ref().take(limit).read_until(b'\n', &mut line)?;
    Ok(line)
}

fn trim(line: &[u8]) -> &[u8] {
    line.trim_ascii()
}

/// Header lines up to the blank line, as lowercased name and trimmed value.
fn read_headers<R: BufRead>(r: &mut R) -> Result<Vec<(String, String)>, ReadError> {
    let mut headers = Vec::new();
    let mut total = 0u64;
    loop {
        let line = read_line(r, MAX_HEAD)?;
        if line.is_empty() {
            return Err(ReadError::Closed);
        }
        total += line.len() as u64;
        if total > MAX_HEAD {
            return Err(ReadError::Protocol(format!(
                "headers longer than {MAX_HEAD} bytes"
            )));
        }
        let line = trim(&line);
        if line.is_empty() {
            return Ok(headers);
        }
        let text = String::from_utf8_lossy(line);
        if let Some((name, value)) = text.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Why reading the stream stopped.
#[derive(Debug)]
enum ReadError {
    /// The server closed the connection.
    Closed,
    Io(io::Error),
    /// The stream is not what it should be (stream-fatal).
    Protocol(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Closed
        } else {
            ReadError::Io(e)
        }
    }
}

/// The `boundary` parameter of a multipart content type.
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = value.trim().trim_matches('"');
        (!v.is_empty()).then(|| v.to_string())
    })
}

/// Reads the parts of a multipart body one after another.
pub struct Multipart<R> {
    reader: R,
    /// Delimiter lines: "--" + boundary, and the boundary itself when it already starts with
    /// "--" (cameras that put the dashes in the parameter).
    delimiters: Vec<Vec<u8>>,
    /// The last part was read up to and including the next delimiter line.
    at_part_head: bool,
}

impl<R: BufRead> Multipart<R> {
    pub fn new(reader: R, boundary: &str) -> Multipart<R> {
        let mut delimiters = vec![format!("--{boundary}").into_bytes()];
        if boundary.starts_with("--") {
            delimiters.push(boundary.as_bytes().to_vec());
        }
        Multipart {
            reader,
            delimiters,
            at_part_head: false,
        }
    }

    /// Whether a line is a delimiter; `Some(true)` for the closing one ("--boundary--").
    fn delimiter(&self, line: &[u8]) -> Option<bool> {
        let line = trim(line);
        self.delimiters.iter().find_map(|d| {
            let rest = line.strip_prefix(d.as_slice())?;
            match rest {
                b"" => Some(false),
                b"--" => Some(true),
                _ => None,
            }
        })
    }

    /// The next part's body.
    fn next_part(&mut self) -> Result<Vec<u8>, ReadError> {
        if !self.at_part_head {
            let mut skipped = 0;
            loop {
                let line = read_line(&mut self.reader, MAX_SKIP as u64)?;
                if line.is_empty() {
                    return Err(ReadError::Closed);
                }
                match self.delimiter(&line) {
                    Some(false) => break,
                    Some(true) => return Err(ReadError::Closed),
                    None => {}
                }
                skipped += line.len();
                if skipped > MAX_SKIP {
                    return Err(ReadError::Protocol(format!(
                        "no part boundary in {MAX_SKIP} bytes (is the boundary {:?}?)",
                        String::from_utf8_lossy(&self.delimiters[0])
                    )));
                }
            }
        }
        self.at_part_head = false;
        let headers = read_headers(&mut self.reader)?;
        if let Some(len) = header(&headers, "content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| ReadError::Protocol(format!("bad part Content-Length {len:?}")))?;
            if len > MAX_PART {
                return Err(ReadError::Protocol(format!(
                    "part of {len} bytes, more than the limit of {MAX_PART}"
                )));
            }
            let mut body = vec![0u8; len];
            self.reader.read_exact(&mut body)?;
            return Ok(body);
        }
        // No length: the part runs up to the line break before the next delimiter.
        let mut body = Vec::new();
        loop {
            let line = read_line(&mut self.reader, (MAX_PART + 1 - body.len()) as u64)?;
            if line.is_empty() {
                return Err(ReadError::Closed);
            }
            if let Some(last) = self.delimiter(&line) {
                if body.ends_with(b"\r\n") {
                    body.truncate(body.len() - 2);
                } else if body.ends_with(b"\n") {
                    body.truncate(body.len() - 1);
                }
                if !last {
                    self.at_part_head = true;
                }
                return Ok(body);
            }
            body.extend_from_slice(&line);
            if body.len() > MAX_PART {
                return Err(ReadError::Protocol(format!(
                    "part longer than the limit of {MAX_PART} bytes and no boundary"
                )));
            }
        }
    }
}

/// A `Transfer-Encoding: chunked` body.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = read_line(&mut self.inner, 1024)?;
            let text = String::from_utf8_lossy(trim(&line)).into_owned();
            let size = text.split(';').next().unwrap_or_default().trim();
            if line.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {size:?}"),
                )
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n as u64;
        if self.left == 0 {
            // The line break after the chunk's data.
            let crlf = read_line(&mut self.inner, 2)?;
            if trim(&crlf) != b"" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk not followed by a line break",
                ));
            }
        }
        Ok(n)
    }
}

type Body = Box<dyn BufRead + Send>;

pub struct MjpegSource {
    url: Url,
    parts: Multipart<Body>,
    timeout: Duration,
    seq: u64,
}

impl MjpegSource {
    /// Connect to the stream at `url`; `timeout` bounds the connection and every read.
    pub fn connect(url: &str, timeout: Duration) -> Result<MjpegSource, CameraError> {
        let parsed = Url::parse(url).map_err(|reason| CameraError::StreamConfig {
            url: "(camera.mjpeg_url)".to_string(),
            reason,
        })?;
        let fail = |reason: String| CameraError::Stream {
            url: parsed.redacted(),
            reason,
        };
        // What the camera answered shows the URL is wrong: retrying cannot help.
        let misconfigured = |reason: String| CameraError::StreamConfig {
            url: parsed.redacted(),
            reason,
        };
        let stream = open_tcp(&parsed, timeout).map_err(fail)?;
        let mut writer = stream
            .try_clone()
            .map_err(|e| fail(format!("socket: {e}")))?;
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: facegate/{}\r\n\
             Accept: multipart/x-mixed-replace, */*\r\nConnection: close\r\n",
            parsed.path,
            host_header(&parsed),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(u) = &parsed.userinfo {
            request.push_str(&format!(
                "Authorization: Basic {}\r\n",
                base64(u.as_bytes())
            ));
        }
        request.push_str("\r\n");
        writer
            .write_all(request.as_bytes())
            .map_err(|e| fail(format!("sending the request: {e}")))?;

        let mut reader = BufReader::with_capacity(64 << 10, stream);
        let status = read_line(&mut reader, MAX_HEAD)
            .map_err(|e| fail(format!("reading the response: {}", io_reason(&e, timeout))))?;
        let status = String::from_utf8_lossy(trim(&status)).into_owned();
        let code = parse_status(&status).ok_or_else(|| {
            fail(if status.is_empty() {
                "the server closed the connection without answering".into()
            } else {
                format!("not an HTTP response: {status:?}")
            })
        })?;
        let headers = read_headers(&mut reader).map_err(|e| fail(read_reason(e, timeout)))?;
        match code {
            200 => {}
            401 | 403 if parsed.userinfo.is_none() => {
                return Err(misconfigured(format!(
                    "the camera wants a user and password (HTTP {code}): put them in the URL \
                     as http://user:password@host/..."
                )));
            }
            401 | 403 => {
                return Err(misconfigured(format!(
                    "the camera refused the user and password (HTTP {code})"
                )));
            }
            301 | 302 | 303 | 307 | 308 => {
                return Err(misconfigured(format!(
                    "the camera redirects (HTTP {code}) to {}; configure that URL",
                    header(&headers, "location").unwrap_or("(no Location)")
                )));
            }
            _ => return Err(fail(format!("the camera answered {status:?}"))),
        }
        let content_type = header(&headers, "content-type").unwrap_or_default();
        if !content_type.to_ascii_lowercase().starts_with("multipart/") {
            return Err(misconfigured(format!(
                "the response is {:?}, not an MJPEG stream (multipart/x-mixed-replace); a \
                 snapshot URL gives one picture, use the camera's video stream URL",
                if content_type.is_empty() {
                    "without Content-Type"
                } else {
                    content_type
                }
            )));
        }
        let boundary = boundary_of(content_type).ok_or_else(|| {
            misconfigured(format!(
                "the Content-Type {content_type:?} names no boundary"
            ))
        })?;
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        let body: Body = if chunked {
            Box::new(BufReader::new(Chunked {
                inner: reader,
                left: 0,
                done: false,
            }))
        } else {
            Box::new(reader)
        };
        tracing::info!(url = %parsed.redacted(), %boundary, chunked, "MJPEG stream connected");
        Ok(MjpegSource {
            url: parsed,
            parts: Multipart::new(body, &boundary),
            timeout,
            seq: 0,
        })
    }
}

fn host_header(url: &Url) -> String {
    let host = if url.host.contains(':') {
        format!("[{}]", url.host)
    } else {
        url.host.clone()
    };
    if url.port == 80 {
        host
    } else {
        format!("{host}:{}", url.port)
    }
}

fn open_tcp(url: &Url, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
        .collect();
    let mut last = format!("{} resolves to no address", url.host);
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                let setup = s
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| s.set_write_timeout(Some(timeout)))
                    .and_then(|()| s.set_nodelay(true));
                return setup.map(|()| s).map_err(|e| format!("socket: {e}"));
            }
            Err(e) => last = format!("cannot connect to {addr}: {}", io_reason(&e, timeout)),
        }
    }
    Err(last)
}

/// "HTTP/1.1 200 OK" -> 200.
fn parse_status(line: &str) -> Option<u16> {
    let mut words = line.split_ascii_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    words.next()?.parse().ok()
}

fn io_reason(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            format!("timed out after {} ms", timeout.as_millis())
        }
        _ => e.to_string(),
    }
}

fn read_reason(e: ReadError, timeout: Duration) -> String {
    match e {
        ReadError::Closed => "the camera closed the stream".into(),
        ReadError::Io(e) => io_reason(&e, timeout),
        ReadError::Protocol(m) => m,
    }
}

impl FrameSource for MjpegSource {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        let part = self.parts.next_part().map_err(|e| CameraError::Stream {
            url: self.url.redacted(),
            reason: read_reason(e, self.timeout),
        })?;
        let captured = Instant::now();
        self.seq += 1;
        let image = decode_image(&part, MAX_FRAME_PIXELS).map_err(|e| CameraError::BadFrame {
            what: format!("{} part {}", self.url.redacted(), self.seq),
            reason: e.to_string(),
        })?;
        Ok(Frame {
            image,
            captured,
            seq: self.seq,
        })
    }

    fn describe(&self) -> String {
        format!("MJPEG {}", self.url.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn urls_parse_with_port_auth_and_ipv6() {
        let u = Url::parse("http://admin:p%40ss@192.0.2.7:8080/video.cgi?res=hi").unwrap();
        assert_eq!(u.host, "192.0.2.7");
        assert_eq!(u.port, 8080);
        assert_eq!(u.path, "/video.cgi?res=hi");
        assert_eq!(u.userinfo.as_deref(), Some("admin:p@ss"));
        assert_eq!(
            u.redacted(),
            "http://admin:***@192.0.2.7:8080/video.cgi?res=hi"
        );
        let u = Url::parse("HTTP://cam.local").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("cam.local", 80, "/")
        );
        let u = Url::parse("http://[::1]:81/s").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
        assert_eq!(host_header(&u), "[::1]:81");
        assert!(Url::parse("https://cam/").unwrap_err().contains("https"));
        assert!(Url::parse("cam/video").is_err());
        assert!(
            Url::parse("http://cam:99999/")
                .unwrap_err()
                .contains("port")
        );
        assert!(Url::parse("http:///x").unwrap_err().contains("no host"));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc, "{plain}");
        }
    }

    #[test]
    fn boundary_parameter_is_found_quoted_or_not() {
        assert_eq!(
            boundary_of("multipart/x-mixed-replace; boundary=frame").as_deref(),
            Some("frame")
        );
        assert_eq!(
            boundary_of("multipart/x-mixed-replace;Boundary=\"--my b\"").as_deref(),
            Some("--my b")
        );
        assert_eq!(boundary_of("multipart/x-mixed-replace"), None);
        assert_eq!(parse_status("HTTP/1.0 401 Unauthorized"), Some(401));
        assert_eq!(parse_status("ICY 200 OK"), None);
    }

    fn parts_of(body: &[u8], boundary: &str) -> Vec<Result<Vec<u8>, String>> {
        let mut m = Multipart::new(Cursor::new(body.to_vec()), boundary);
        let mut out = Vec::new();
        loop {
            match m.next_part() {
                Ok(p) => out.push(Ok(p)),
                Err(ReadError::Closed) => return out,
                Err(e) => {
                    out.push(Err(read_reason(e, Duration::ZERO)));
                    return out;
                }
            }
        }
    }

    #[test]
    fn parts_are_read_by_length_or_up_to_the_boundary() {
        // Part 1 has a Content-Length and contains a fake boundary line; part 2 has none and
        // contains bare line breaks; junk before the first boundary is skipped.
        let body = b"preamble\r\n--fb\r\nContent-Type: image/jpeg\r\nContent-Length: 12\r\n\r\n\
                     a\r\n--fb\r\nbcd\r\n\r\n--fb\r\nContent-Type: image/jpeg\r\n\r\nx\ny\r\nz\r\n\
                     --fb--\r\n";
        let parts = parts_of(body, "fb");
        assert_eq!(
            parts,
            vec![Ok(b"a\r\n--fb\r\nbcd".to_vec()), Ok(b"x\ny\r\nz".to_vec())]
        );
        // A boundary parameter that already carries the dashes.
        let body = b"--xx\r\nContent-Length: 3\r\n\r\nabc\r\n--xx\r\n\r\nde\r\n--xx\r\n";
        assert_eq!(
            parts_of(body, "--xx"),
            vec![Ok(b"abc".to_vec()), Ok(b"de".to_vec())]
        );
    }

    #[test]
    fn hostile_parts_are_refused() {
        let parts = parts_of(b"--b\r\nContent-Length: 999999999999\r\n\r\nabc", "b");
        assert!(
            matches!(&parts[..], [Err(m)] if m.contains("limit")),
            "{parts:?}"
        );
        let parts = parts_of(b"--b\r\nContent-Length: ten\r\n\r\nabc", "b");
        assert!(
            matches!(&parts[..], [Err(m)] if m.contains("ten")),
            "{parts:?}"
        );
        let junk = vec![b'x'; MAX_SKIP + 10];
        let parts = parts_of(&junk, "b");
        assert!(
            matches!(&parts[..], [Err(m)] if m.contains("no part boundary")),
            "{parts:?}"
        );
        // Truncated part: the stream closed mid-frame.
        assert!(parts_of(b"--b\r\nContent-Length: 10\r\n\r\nabc", "b").is_empty());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let mut c = Chunked {
            inner: Cursor::new(raw.to_vec()),
            left: 0,
            done: false,
        };
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
        let mut bad = Chunked {
            inner: Cursor::new(b"zz\r\nhello".to_vec()),
            left: 0,
            done: false,
        };
        assert!(bad.read_to_string(&mut String::new()).is_err());
    }
}
