//! An IP camera's MJPEG stream: one HTTP GET over plain `http://`, answered with a
//! `multipart/x-mixed-replace` body whose parts are JPEG frames.
//!
//! A small client of its own over `std::net::TcpStream`: HTTP/1.1 with `Connection: close`,
//! identity or chunked bodies, basic auth from the URL's `user:password@`. Parts are read by
//! their `Content-Length` when they have one, else up to the next boundary line.

mod multipart;
#[cfg(test)]
mod tests;
mod url;

use std::io::{self, BufRead, BufReader, Write};
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

use multipart::{Chunked, ReadError, header, read_headers, read_line, trim};
pub(crate) use multipart::{Multipart, boundary_of};
pub use url::Url;
pub(crate) use url::base64;

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
