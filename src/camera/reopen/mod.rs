//! A camera that disappears (unplugged, stream closed, driver hung) is reopened, with a wait
//! that doubles after each failed attempt, and the state is published as a [`CameraStatus`]
//! so the display can say the camera is lost.

mod status;
#[cfg(test)]
mod tests;

use std::time::Duration;

use super::{CameraError, Frame, FrameSource, StopSignal};

pub use status::{CameraStatus, StatusWatch};

/// Exponential backoff: `min`, then doubling up to `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CameraError> + Send>;

/// A source that opens its inner source on demand and reopens it after any failure that is
/// not final. Frame errors pass through; frame numbers stay increasing across reopens. A
/// configuration error ([`CameraError::is_permanent`]) is not retried: the source ends and the
/// status says [`CameraStatus::Misconfigured`].
pub struct Reopening {
    describe: String,
    open: Opener,
    inner: Option<Box<dyn FrameSource>>,
    backoff: Backoff,
    status: StatusWatch,
    stop: StopSignal,
    /// Wait before the next open attempt.
    wait: Option<Duration>,
    failures: u32,
    ended: Option<CameraError>,
    seq: u64,
    /// False only while [`Reopening::open_now`] runs.
    started: bool,
}

impl Reopening {
    /// `open` is called for the first frame and again after every failure.
    pub fn new(
        describe: impl Into<String>,
        backoff: Backoff,
        open: impl FnMut() -> Result<Box<dyn FrameSource>, CameraError> + Send + 'static,
    ) -> Reopening {
        Reopening {
            describe: describe.into(),
            open: Box::new(open),
            inner: None,
            backoff,
            status: StatusWatch::default(),
            stop: StopSignal::new(),
            wait: None,
            failures: 0,
            ended: None,
            seq: 0,
            started: true,
        }
    }

    /// The status, to be read by the display and others.
    pub fn status(&self) -> StatusWatch {
        self.status.clone()
    }

    fn failed(&mut self, e: &CameraError) {
        self.failures += 1;
        let retry_in = self.backoff.next_delay();
        tracing::warn!(
            camera = %self.describe,
            error = %e,
            attempts = self.failures,
            retry_in_ms = retry_in.as_millis() as u64,
            "camera lost; reopening"
        );
        self.status.set(CameraStatus::Lost {
            reason: e.to_string(),
            attempts: self.failures,
            retry_in,
        });
        self.wait = Some(retry_in);
    }

    /// Open the source now instead of on the first frame (a daemon does this at start-up, to
    /// refuse a configuration error at once). `Err` is a configuration error: the source has
    /// ended. `Ok(Some(e))`: the camera is not there yet (unplugged, unreachable); the status
    /// says Lost and the next frame request retries after the backoff. `Ok(None)`: open.
    pub fn open_now(&mut self) -> Result<Option<CameraError>, CameraError> {
        // A configuration error found here is the caller's to report (not logged twice).
        self.started = false;
        let result = self.open_first();
        self.started = true;
        result
    }

    fn open_first(&mut self) -> Result<Option<CameraError>, CameraError> {
        if let Some(e) = &self.ended {
            return Err(e.clone());
        }
        if self.inner.is_some() {
            return Ok(None);
        }
        match (self.open)() {
            Ok(mut s) => {
                s.attach_stop(&self.stop);
                self.inner = Some(s);
                Ok(None)
            }
            Err(e) if e.is_final() => Err(self.end(e)),
            Err(e) => {
                self.failed(&e);
                Ok(Some(e))
            }
        }
    }

    fn end(&mut self, e: CameraError) -> CameraError {
        self.inner = None;
        self.status.set(match &e {
            CameraError::Stopped => CameraStatus::Stopped,
            other if other.is_permanent() => {
                if self.started {
                    tracing::error!(
                        camera = %self.describe,
                        error = %other,
                        advice = %other.advice(),
                        "camera misconfigured; not retried"
                    );
                }
                CameraStatus::Misconfigured {
                    reason: other.to_string(),
                    advice: other.advice(),
                }
            }
            other => CameraStatus::Ended {
                reason: other.to_string(),
            },
        });
        self.ended = Some(e.clone());
        e
    }
}

impl FrameSource for Reopening {
    fn next_frame(&mut self) -> Result<Frame, CameraError> {
        loop {
            if let Some(e) = &self.ended {
                return Err(e.clone());
            }
            if self.stop.is_stopped() {
                return Err(self.end(CameraError::Stopped));
            }
            let inner = match &mut self.inner {
                Some(inner) => inner,
                None => {
                    if let Some(d) = self.wait.take()
                        && !self.stop.sleep(d)
                    {
                        return Err(self.end(CameraError::Stopped));
                    }
                    match (self.open)() {
                        Ok(mut s) => {
                            s.attach_stop(&self.stop);
                            self.inner.insert(s)
                        }
                        Err(e) if e.is_final() => return Err(self.end(e)),
                        Err(e) => {
                            self.failed(&e);
                            continue;
                        }
                    }
                }
            };
            match inner.next_frame() {
                Ok(mut frame) => {
                    if !self.status.get().is_streaming() {
                        let source = inner.describe();
                        tracing::info!(camera = %source, "camera streaming");
                        self.status.set(CameraStatus::Streaming { source });
                    }
                    self.backoff.reset();
                    self.failures = 0;
                    self.seq += 1;
                    frame.seq = self.seq;
                    return Ok(frame);
                }
                Err(e) if e.is_frame_error() => return Err(e),
                Err(e) if e.is_final() => return Err(self.end(e)),
                Err(e) => {
                    self.inner = None;
                    self.failed(&e);
                }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.inner {
            Some(inner) => inner.describe(),
            None => self.describe.clone(),
        }
    }

    fn attach_stop(&mut self, stop: &StopSignal) {
        self.stop = stop.clone();
        if let Some(inner) = &mut self.inner {
            inner.attach_stop(stop);
        }
    }
}
