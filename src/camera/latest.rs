//! Stale frames are dropped, never queued: the capture thread writes each frame into a
//! one-frame mailbox, replacing any frame not yet taken, and the consumer always takes the
//! newest. Plain threads, a mutex and a condition variable: no async runtime needed (a tokio
//! consumer calls [`FrameReceiver::recv`] from `spawn_blocking`).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{CameraError, Frame, FrameSource, StopSignal, lock};

#[derive(Default)]
struct Slot {
    frame: Option<Frame>,
    /// Frames published.
    published: u64,
    /// Frames replaced before the consumer took them.
    dropped: u64,
    /// Frames the source could not deliver (corrupt images).
    bad: u64,
    /// Why the sender ended, once it has.
    end: Option<CameraError>,
    receiver_gone: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
}

/// The writing end of the mailbox (the capture thread).
pub struct FrameSender {
    shared: Arc<Shared>,
}

/// The reading end of the mailbox (the pipeline).
pub struct FrameReceiver {
    shared: Arc<Shared>,
}

/// A new one-frame mailbox.
pub fn latest_frame() -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared::default());
    (
        FrameSender {
            shared: shared.clone(),
        },
        FrameReceiver { shared },
    )
}

impl FrameSender {
    /// Put `frame` in the mailbox, replacing (and counting as dropped) a frame not yet taken.
    /// Returns false once the receiver is gone.
    pub fn publish(&self, frame: Frame) -> bool {
        let mut s = lock(&self.shared.slot);
        if s.receiver_gone {
            return false;
        }
        if s.frame.replace(frame).is_some() {
            s.dropped += 1;
        }
        s.published += 1;
        drop(s);
        self.shared.ready.notify_all();
        true
    }

    /// Count a frame the source could not deliver.
    pub fn note_bad_frame(&self) -> u64 {
        let mut s = lock(&self.shared.slot);
        s.bad += 1;
        s.bad
    }

    /// End the stream: the receiver gets any frame still waiting, then `reason`.
    pub fn close(self, reason: CameraError) {
        self.end(reason);
    }

    fn end(&self, reason: CameraError) {
        let mut s = lock(&self.shared.slot);
        if s.end.is_none() {
            s.end = Some(reason);
        }
        drop(s);
        self.shared.ready.notify_all();
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        self.end(CameraError::Stopped);
    }
}

impl FrameReceiver {
    /// The newest frame, waiting for one if none is waiting. After the sender ended, and the
    /// last frame was taken, the reason it ended.
    pub fn recv(&self) -> Result<Frame, CameraError> {
        let mut s = lock(&self.shared.slot);
        loop {
            if let Some(f) = s.frame.take() {
                return Ok(f);
            }
            if let Some(e) = &s.end {
                return Err(e.clone());
            }
            s = self
                .shared
                .ready
                .wait(s)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Like [`recv`](Self::recv), waiting at most `timeout`: `Ok(None)` if no frame came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, CameraError> {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.shared.slot);
        loop {
            if let Some(f) = s.frame.take() {
                return Ok(Some(f));
            }
            if let Some(e) = &s.end {
                return Err(e.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            s = self
                .shared
                .ready
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The waiting frame, if any, without blocking.
    pub fn try_recv(&self) -> Result<Option<Frame>, CameraError> {
        self.recv_timeout(Duration::ZERO)
    }

    /// Frames replaced before they were taken.
    pub fn dropped(&self) -> u64 {
        lock(&self.shared.slot).dropped
    }

    /// Frames published in all.
    pub fn published(&self) -> u64 {
        lock(&self.shared.slot).published
    }

    /// Frames the source could not deliver (corrupt images, damaged JPEGs).
    pub fn bad_frames(&self) -> u64 {
        lock(&self.shared.slot).bad
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        lock(&self.shared.slot).receiver_gone = true;
    }
}

/// The capture thread. Dropping the handle stops it (without waiting for it).
pub struct CaptureHandle {
    stop: StopSignal,
    thread: Option<JoinHandle<()>>,
}

impl CaptureHandle {
    /// Ask the capture thread to stop; it ends at its next wait or frame.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// The signal that stops the thread (to share with other parts of a shutdown).
    pub fn stop_signal(&self) -> StopSignal {
        self.stop.clone()
    }

    /// Stop the thread and wait for it to end.
    pub fn join(mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("camera capture thread panicked");
        }
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Run `source` on a thread of its own, publishing every frame to a one-frame mailbox.
/// Frame errors are counted and logged (the first, then at powers of two); any other error
/// ends the thread and is what the receiver gets after the last frame.
pub fn spawn_capture<S: FrameSource + 'static>(
    mut source: S,
) -> Result<(CaptureHandle, FrameReceiver), CameraError> {
    let stop = StopSignal::new();
    source.attach_stop(&stop);
    let (tx, rx) = latest_frame();
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("camera".into())
        .spawn(move || capture_loop(&mut source, tx, &thread_stop))
        .map_err(|e| CameraError::Device {
            device: "capture thread".into(),
            reason: format!("cannot start: {e}"),
        })?;
    Ok((
        CaptureHandle {
            stop,
            thread: Some(thread),
        },
        rx,
    ))
}

fn capture_loop(source: &mut dyn FrameSource, tx: FrameSender, stop: &StopSignal) {
    tracing::debug!(source = %source.describe(), "capture thread started");
    loop {
        if stop.is_stopped() {
            tx.close(CameraError::Stopped);
            return;
        }
        match source.next_frame() {
            Ok(frame) => {
                if !tx.publish(frame) {
                    tracing::debug!("frame receiver gone; capture thread ends");
                    return;
                }
            }
            Err(e) if e.is_frame_error() => {
                let n = tx.note_bad_frame();
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, bad_frames = n, "camera frame unusable");
                }
            }
            Err(e) => {
                match &e {
                    CameraError::Stopped => tracing::debug!("capture stopped"),
                    CameraError::EndOfStream { .. } => tracing::info!(reason = %e, "capture ended"),
                    _ => tracing::warn!(error = %e, "capture ended"),
                }
                tx.close(e);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame {
            image: image::RgbImage::new(1, 1),
            captured: Instant::now(),
            seq,
        }
    }

    #[test]
    fn a_waiting_frame_is_replaced_and_counted() {
        let (tx, rx) = latest_frame();
        assert!(rx.try_recv().unwrap().is_none());
        assert!(tx.publish(frame(1)));
        assert!(tx.publish(frame(2)));
        assert!(tx.publish(frame(3)));
        assert_eq!(rx.recv().unwrap().seq, 3);
        assert_eq!((rx.dropped(), rx.published()), (2, 3));
        assert!(tx.publish(frame(4)));
        tx.close(CameraError::EndOfStream { what: "t".into() });
        // The last frame still arrives, then the reason, again and again.
        assert_eq!(rx.recv().unwrap().seq, 4);
        assert!(matches!(rx.recv(), Err(CameraError::EndOfStream { .. })));
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(1)),
            Err(CameraError::EndOfStream { .. })
        ));
    }

    #[test]
    fn publishing_after_the_receiver_is_gone_says_so() {
        let (tx, rx) = latest_frame();
        drop(rx);
        assert!(!tx.publish(frame(1)));
    }

    #[test]
    fn a_dropped_sender_ends_the_stream() {
        let (tx, rx) = latest_frame();
        let t = std::thread::spawn(move || rx.recv());
        std::thread::sleep(Duration::from_millis(10));
        drop(tx);
        assert_eq!(t.join().unwrap().unwrap_err(), CameraError::Stopped);
    }
}
