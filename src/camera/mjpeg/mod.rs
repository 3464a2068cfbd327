//! An IP camera's MJPEG stream: one HTTP GET (`http://` or `https://`), answered with a
//! `multipart/x-mixed-replace` body whose parts are JPEG frames.
//!
//! The HTTP client is reqwest's (the one the webhooks and `facegate events` use; HTTP/1.1,
//! identity or chunked bodies, TLS by rustls trusting the public authorities). A user and
//! password in the URL (`http://user:password@host/...`) become basic auth: reqwest takes them
//! out of the URL it sends and puts them, percent-decoded, in an `Authorization: Basic` header
//! marked sensitive. Messages and logs show the URL through [`Url::redacted`] only. The body's
//! parts are read by facegate's own parser ([`Multipart`]: by their `Content-Length` when they
//! have one, else up to the next boundary line; heads, parts and skipped data bounded by
//! `MAX_HEAD`, `MAX_PART`, `MAX_SKIP`).
//!
//! The timeout. The stream never ends, so a deadline for the whole request would cut a
//! healthy stream; what is wanted is a bound on connecting and on each wait for more data, so
//! that a camera that stops sending is noticed after `timeout` while a live one runs for ever.
//! What reqwest 0.12 (0.12.28, read in its source) offers:
//! - `reqwest::blocking` (feature `blocking`): its `ClientBuilder::timeout` (default 30 s) is not
//!   handed to the async client inside; it bounds `send()` (connect and head) and then *each*
//!   `Read::read` of the body on its own (`blocking/response.rs`: every `read` waits through
//!   `wait::timeout` with a fresh deadline). So it is a per-read timeout in fact, though
//!   documented as "connect, read and write". But the blocking client runs its own runtime on a
//!   thread of its own per client (`blocking/client.rs`, "reqwest-internal-sync-runtime"), and
//!   needs the `blocking` feature (futures-channel and more).
//! - The async client (`async_impl/client.rs`): `timeout` is a total deadline "until the
//!   response body has finished" (wrong here); `read_timeout` is first one sleep started when
//!   the request is sent, bounding connecting and the answer's head together
//!   (`PendingRequest`), then, on the body (`async_impl/body.rs`, `ReadTimeoutBody`), a sleep
//!   started at each wait for a body frame and reset by every frame received: an inactivity
//!   timeout; `connect_timeout` bounds connecting (DNS, TCP, TLS).
//!
//! facegate uses the async client with `connect_timeout` and `read_timeout` (both the
//! configured `camera.mjpeg_timeout_ms`), no `timeout`, on a current-thread runtime owned by the
//! source: the camera thread blocks on it for each chunk (no extra thread, no new feature, the
//! same pattern as `facegate events`). No proxy from the environment (`no_proxy`: the camera is
//! on the local network, as with the plain socket before), no redirects followed (a redirect is
//! reported with its target, to be configured), no idle connection kept. The runtime only runs
//! while the camera thread waits on it, like the plain socket before it: between frames the
//! connection is not read.
//! Tests (`tests/camera.rs`): a camera that stalls before answering or mid-part is a
//! [`CameraError::Stream`] after about the timeout; a healthy stream over twice as long as the
//! timeout keeps delivering (each fails with the other choice of timeout).

mod client;
mod multipart;
#[cfg(test)]
mod tests;
mod url;

use std::io::BufReader;
use std::time::{Duration, Instant};

use super::{CameraError, Frame, FrameSource, MAX_FRAME_PIXELS};
use crate::vision::frame::decode_image;

/// Largest part head, in bytes.
const MAX_HEAD: u64 = 16 << 10;
/// Largest frame accepted (a 4K JPEG is a few MB).
const MAX_PART: usize = 32 << 20;
/// Bytes of non-part data skipped, looking for a boundary, before giving up.
const MAX_SKIP: usize = 1 << 20;

use multipart::ReadError;
pub(crate) use multipart::{Multipart, boundary_of};
pub use url::Url;

pub struct MjpegSource {
    url: Url,
    parts: Multipart<BufReader<client::Body>>,
    timeout: Duration,
    seq: u64,
}

impl MjpegSource {
    /// Connect to the stream at `url`; `timeout` bounds connecting, the wait for the answer,
    /// and every wait for more of the stream (never the whole stream). Must be called on a
    /// thread, not inside an async task.
    pub fn connect(url: &str, timeout: Duration) -> Result<MjpegSource, CameraError> {
        let parsed = Url::parse(url).map_err(|reason| CameraError::StreamConfig {
            url: "(camera.mjpeg_url)".to_string(),
            reason,
        })?;
        let opened = client::open(&parsed, timeout)?;
        tracing::info!(url = %parsed.redacted(), boundary = %opened.boundary, "MJPEG stream connected");
        Ok(MjpegSource {
            parts: Multipart::new(
                BufReader::with_capacity(64 << 10, opened.body),
                &opened.boundary,
            ),
            url: parsed,
            timeout,
            seq: 0,
        })
    }
}

fn read_reason(e: ReadError, timeout: Duration) -> String {
    match e {
        ReadError::Closed => "the camera closed the stream".into(),
        ReadError::Io(e) => match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                format!("timed out: nothing received for {} ms", timeout.as_millis())
            }
            _ => e.to_string(),
        },
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
