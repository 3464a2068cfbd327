//! The stream's HTTP request and its body as a blocking [`Read`]: reqwest's async client (the
//! one the webhooks and `facegate events` use) on a current-thread tokio runtime the source
//! owns. See the module above for why not `reqwest::blocking`.

use std::error::Error as _;
use std::io::{self, Read};
use std::time::Duration;

use super::Url;
use crate::camera::CameraError;

/// An opened stream: the `boundary` of its multipart type, and its body.
pub(super) struct Opened {
    pub boundary: String,
    pub body: Body,
}

/// The response body, read chunk by chunk: each read that needs more data waits for the next
/// chunk on the source's own runtime, at most the read timeout.
pub(super) struct Body {
    // Dropped in this order: the response before the runtime its connection runs on.
    response: reqwest::Response,
    /// What is left of the last chunk.
    pending: Vec<u8>,
    at: usize,
    rt: tokio::runtime::Runtime,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.at == self.pending.len() {
            match self.rt.block_on(self.response.chunk()) {
                Ok(Some(chunk)) => {
                    self.pending.clear();
                    self.pending.extend_from_slice(&chunk);
                    self.at = 0;
                }
                Ok(None) => return Ok(0),
                Err(e) => return Err(body_error(e)),
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Send the GET and check the answer: a `200` with a multipart type naming a boundary.
/// `timeout` bounds connecting (DNS, TCP and TLS), the wait for the answer's head, and then each
/// wait for more of the body, never the whole stream.
pub(super) fn open(url: &Url, timeout: Duration) -> Result<Opened, CameraError> {
    let fail = |reason: String| CameraError::Stream {
        url: url.redacted(),
        reason,
    };
    // What the camera answered shows the URL is wrong: retrying cannot help.
    let misconfigured = |reason: String| CameraError::StreamConfig {
        url: url.redacted(),
        reason,
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        // block_on would panic: a programming error, said rather than panicked.
        return Err(fail(
            "the MJPEG client was opened inside an async task; open it on a thread".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the HTTP client's runtime: {e}")))?;
    // reqwest's builder needs the runtime's reactor and timer at hand.
    let entered = rt.enter();
    let client = reqwest::Client::builder()
        .connect_timeout(timeout)
        // Per read, reset by every chunk received (reqwest's `read_timeout`); no `timeout`:
        // that one is a deadline for the whole body, and the stream never ends.
        .read_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A camera is on the local network: no proxy from the environment.
        .no_proxy()
        .pool_max_idle_per_host(0)
        .user_agent(concat!("facegate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(format!("cannot build the HTTP client: {}", chain(e))))?;
    drop(entered);
    let request = client
        .get(url.as_reqwest().clone())
        .header(reqwest::header::ACCEPT, "multipart/x-mixed-replace, */*");
    let response = rt
        // `send` starts the read timeout's timer at once: inside the runtime.
        .block_on(async { request.send().await })
        .map_err(|e| send_error(e, timeout, &fail, &misconfigured))?;

    let code = response.status().as_u16();
    match code {
        200 => {}
        401 | 403 if !url.has_credentials() => {
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
        404 | 410 => {
            return Err(misconfigured(format!(
                "the camera has no stream at this path (HTTP {code}): check the path of the \
                 URL in the camera's manual"
            )));
        }
        301 | 302 | 303 | 307 | 308 => {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| Url::parse(l).map_or_else(|_| l.to_string(), |u| u.redacted()))
                .unwrap_or_else(|| "(no Location)".into());
            return Err(misconfigured(format!(
                "the camera redirects (HTTP {code}) to {location}; configure that URL"
            )));
        }
        _ => {
            return Err(fail(format!(
                "the camera answered HTTP {}",
                response.status()
            )));
        }
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return Err(misconfigured(format!(
            "the response is {:?}, not an MJPEG stream (multipart/x-mixed-replace); a \
             snapshot URL gives one picture, use the camera's video stream URL",
            if content_type.is_empty() {
                "without Content-Type"
            } else {
                &content_type
            }
        )));
    }
    let boundary = super::boundary_of(&content_type).ok_or_else(|| {
        misconfigured(format!(
            "the Content-Type {content_type:?} names no boundary"
        ))
    })?;
    Ok(Opened {
        boundary,
        body: Body {
            response,
            pending: Vec::new(),
            at: 0,
            rt,
        },
    })
}

/// Why the request failed, as a [`CameraError`]: a certificate that is not trusted is
/// configuration; anything else (refused, unreachable, timed out, closed) may pass.
fn send_error(
    e: reqwest::Error,
    timeout: Duration,
    fail: &dyn Fn(String) -> CameraError,
    misconfigured: &dyn Fn(String) -> CameraError,
) -> CameraError {
    if let Some(tls) = find::<tokio_rustls::rustls::Error>(&e) {
        if matches!(tls, tokio_rustls::rustls::Error::InvalidCertificate(_)) {
            return misconfigured(format!(
                "the camera's certificate is not trusted ({tls}): use a certificate from a \
                 public authority, or http:// on a network you trust"
            ));
        }
        return fail(format!("TLS: {tls}"));
    }
    if e.is_timeout() {
        let what = if e.is_connect() {
            "connecting"
        } else {
            "waiting for the answer"
        };
        return fail(format!("timed out after {} ms {what}", timeout.as_millis()));
    }
    if e.is_connect() {
        return fail(format!("cannot connect: {}", chain(e)));
    }
    if is_closed(&e) {
        return fail("the server closed the connection without answering".into());
    }
    fail(chain(e))
}

/// A body read's error as the `io::Error` the part reader expects: a timeout as `TimedOut`, a
/// connection closed mid-body as `UnexpectedEof` (both read as such by the caller).
fn body_error(e: reqwest::Error) -> io::Error {
    if e.is_timeout() {
        io::ErrorKind::TimedOut.into()
    } else if is_closed(&e) {
        io::ErrorKind::UnexpectedEof.into()
    } else {
        io::Error::other(chain(e))
    }
}

/// The peer closed the connection before the message was complete.
fn is_closed(e: &reqwest::Error) -> bool {
    find::<hyper::Error>(e).is_some_and(|h| h.is_incomplete_message())
        || find::<io::Error>(e).is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            )
        })
}

/// The first error of type `T` in `e`'s chain of sources, looking inside `io::Error`s too
/// (whose `source` skips the error they wrap).
fn find<T: std::error::Error + 'static>(e: &reqwest::Error) -> Option<&T> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<T>() {
            return Some(t);
        }
        let wrapped = s.downcast_ref::<io::Error>().and_then(io::Error::get_ref);
        if let Some(t) = wrapped.and_then(|w| w.downcast_ref::<T>()) {
            return Some(t);
        }
        source = match wrapped {
            Some(w) => Some(w as &(dyn std::error::Error + 'static)),
            None => s.source(),
        };
    }
    None
}

/// The messages of `e`'s sources, without reqwest's own (which names the URL).
fn chain(e: reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        // No source: reqwest's own message, without the URL.
        return e.without_url().to_string();
    }
    parts.join(": ")
}
