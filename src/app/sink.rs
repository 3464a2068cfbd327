//! Where the records go: one [`EventSink`] seam, fanned out ([`FanOut`]) to the JSON lines on
//! stdout ([`JsonLines`]) and the audit log ([`AuditSink`]); the coming MQTT and webhook sinks
//! plug in beside them.
//!
//! The door's records come through a channel ([`Sinks::drain`]); the use-cases of the HTTP API
//! and the command line publish theirs ([`Record::Request`]) directly with
//! [`Sinks::publish`], which returns once the audit log has them on disk (acknowledged means
//! durable). Both go through the same [`Sinks`]: one fan-out per process.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::space::{SpaceError, SpaceGuard};
use crate::access::AuditLog;
use crate::access::audit::AuditError;
use crate::access::daemon::Record;

/// Something that takes every decision and door event.
pub trait EventSink: Send {
    /// Take one record. A sink reports its own failures (logs them): one failing sink never
    /// stops the others or the door.
    fn record(&mut self, r: &Record);
    /// Called about every [`IDLE_TICK`] when no record comes (for housekeeping).
    fn idle(&mut self) {}
    /// Make everything taken so far durable (at exit).
    fn flush(&mut self) -> Result<(), AuditError> {
        Ok(())
    }
    /// Take a request's records ([`Record::Request`]) and return once they are durable: the
    /// request is acknowledged after this. A sink that only forwards (JSON lines, MQTT,
    /// webhooks) need not override it: by default each record goes to [`record`](Self::record)
    /// and nothing can fail. The audit log's sink writes and flushes, and says when it could
    /// not.
    fn take_durably(&mut self, records: &[Record]) -> Result<(), SinkError> {
        for r in records {
            self.record(r);
        }
        Ok(())
    }
}

/// Why a request's records were not made durable.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The audit log's disk is full: nothing was written.
    #[error(transparent)]
    Space(#[from] SpaceError),
}

/// How often [`EventSink::idle`] is called when nothing happens.
pub const IDLE_TICK: Duration = Duration::from_secs(600);

/// Every sink, in order.
#[derive(Default)]
pub struct FanOut(Vec<Box<dyn EventSink>>);

impl FanOut {
    pub fn new() -> FanOut {
        FanOut::default()
    }

    pub fn with(mut self, sink: impl EventSink + 'static) -> FanOut {
        self.0.push(Box::new(sink));
        self
    }

    /// Feed the sinks from `rx` until every sender is gone, then flush them all; the first
    /// flush error is returned (after every sink was flushed).
    pub fn drain(mut self, rx: &std::sync::mpsc::Receiver<Record>) -> Result<(), AuditError> {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            match rx.recv_timeout(IDLE_TICK) {
                Ok(r) => self.record(&r),
                Err(RecvTimeoutError::Timeout) => self.idle(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.flush()
    }
}

impl EventSink for FanOut {
    fn record(&mut self, r: &Record) {
        for s in &mut self.0 {
            s.record(r);
        }
    }

    fn idle(&mut self) {
        for s in &mut self.0 {
            s.idle();
        }
    }

    fn flush(&mut self) -> Result<(), AuditError> {
        let mut first = Ok(());
        for s in &mut self.0 {
            let r = s.flush();
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Every sink takes the records, even after one failed; the first failure is returned.
    fn take_durably(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let mut first = Ok(());
        for s in &mut self.0 {
            let r = s.take_durably(records);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// The process's one fan-out, shared: the door's records thread drains into it
/// ([`Sinks::drain`]) while the use-cases publish into it ([`Sinks::publish`]).
#[derive(Clone)]
pub struct Sinks(Arc<std::sync::Mutex<FanOut>>);

impl Sinks {
    pub fn new(fan_out: FanOut) -> Sinks {
        Sinks(Arc::new(std::sync::Mutex::new(fan_out)))
    }

    /// The fan-out of one sink: the audit log, on the filesystems `space` guards.
    pub fn audit(audit: Arc<AuditLog>, space: SpaceGuard) -> Sinks {
        Sinks::new(FanOut::new().with(AuditSink::new(audit, space)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FanOut> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a sink (before the records start).
    pub fn add(&self, sink: impl EventSink + 'static) {
        let mut f = self.lock();
        let taken = std::mem::take(&mut *f);
        *f = taken.with(sink);
    }

    /// Give a request's records to every sink; returns once the audit log has them on disk.
    pub fn publish(&self, records: &[Record]) -> Result<(), SinkError> {
        self.lock().take_durably(records)
    }

    /// Give a request's records to every sink, as the door's records are: written now, made
    /// durable by the sinks' own flushes (a full disk is logged and counted, not refused).
    pub fn publish_soon(&self, records: &[Record]) {
        let mut f = self.lock();
        for r in records {
            f.record(r);
        }
    }

    /// Make everything taken so far durable and let the forwarding sinks deliver what they
    /// can (at exit, outside the async runtime: the events-out sink waits for its tasks).
    pub fn flush(&self) -> Result<(), AuditError> {
        self.lock().flush()
    }

    /// Feed the sinks from `rx` until every sender is gone, then flush them all (see
    /// [`FanOut::drain`]); the fan-out is locked for one record at a time.
    pub fn drain(&self, rx: &std::sync::mpsc::Receiver<Record>) -> Result<(), AuditError> {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            match rx.recv_timeout(IDLE_TICK) {
                Ok(r) => self.lock().record(&r),
                Err(RecvTimeoutError::Timeout) => self.lock().idle(),
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.lock().flush()
    }
}

/// One JSON object per line (stdout for `facegate run`).
pub struct JsonLines<W: Write + Send>(pub W);

impl<W: Write + Send> EventSink for JsonLines<W> {
    fn record(&mut self, r: &Record) {
        let written = serde_json::to_string(r)
            .map_err(std::io::Error::other)
            .and_then(|line| writeln!(self.0, "{line}"))
            .and_then(|()| self.0.flush());
        if let Err(e) = written {
            tracing::warn!(error = %e, "JSON line not written");
        }
    }
}

/// The audit log: the records it keeps (decisions, unlocks, alarms), at the record's own time,
/// and the face crop retention applied while nobody comes. On a full disk ([`SpaceGuard`])
/// nothing is written, the door goes on, and the log says how many events it missed.
pub struct AuditSink {
    audit: Arc<AuditLog>,
    space: SpaceGuard,
    unlogged: u64,
    told: Option<Instant>,
    next_purge: Instant,
}

impl AuditSink {
    pub fn new(audit: Arc<AuditLog>, space: SpaceGuard) -> AuditSink {
        AuditSink {
            audit,
            space,
            unlogged: 0,
            told: None,
            next_purge: Instant::now() + IDLE_TICK,
        }
    }

    /// Events not written because the disk was full, since space was last available.
    pub fn unlogged(&self) -> u64 {
        self.unlogged
    }

    fn purge_when_due(&mut self) {
        if Instant::now() >= self.next_purge {
            self.next_purge = Instant::now() + IDLE_TICK;
            if let Err(e) = self.audit.purge_crops() {
                tracing::error!(error = %e, "audit log: face crop retention");
            }
        }
    }
}

impl EventSink for AuditSink {
    fn record(&mut self, r: &Record) {
        self.purge_when_due();
        let Some(event) = r.audit_event() else {
            return;
        };
        if let Err(e) = self.space.check() {
            self.unlogged += 1;
            if self
                .told
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                tracing::error!(error = %e, unlogged = self.unlogged, "audit log: event not written");
                self.told = Some(Instant::now());
            }
            return;
        }
        if self.unlogged > 0 {
            tracing::warn!(
                unlogged = self.unlogged,
                "audit log: space is back; events were not written meanwhile"
            );
            self.unlogged = 0;
        }
        // At the record's own time: the door thread's unlock record may reach the sink before
        // the decision that caused it, which would otherwise be logged after it.
        if let Err(e) = self.audit.append_at(event, r.at_ms()) {
            tracing::error!(error = %e, "audit log");
        }
    }

    fn idle(&mut self) {
        // Crops also age out while nobody comes to the door.
        self.purge_when_due();
    }

    fn flush(&mut self) -> Result<(), AuditError> {
        self.audit.flush()
    }

    /// Written and flushed, or an error: a full disk refuses them all (nothing written).
    fn take_durably(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let events: Vec<_> = records
            .iter()
            .filter_map(|r| r.audit_event().map(|e| (e, r.at_ms())))
            .collect();
        if events.is_empty() {
            return Ok(());
        }
        self.space.check()?;
        for (event, at_ms) in events {
            self.audit.append_at(event, at_ms)?;
        }
        Ok(self.audit.flush()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::door::{DoorEvent, UnlockBy};
    use crate::access::policy::Verdict;
    use crate::access::{EventFilter, Outcome};
    use std::sync::Mutex;

    /// Bytes written, shared with the test.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A sink that keeps what it was given.
    struct Keep(Arc<Mutex<Vec<Record>>>);

    impl EventSink for Keep {
        fn record(&mut self, r: &Record) {
            self.0.lock().unwrap().push(r.clone());
        }
    }

    fn granted(at_ms: i64) -> Record {
        Record::Decision {
            at_ms,
            verdict: Verdict::Granted {
                person: "p".into(),
                score: 0.9,
            },
            quality: None,
            latency_ms: 1.0,
            frame: 1,
            liveness: None,
            face: None,
        }
    }

    #[test]
    fn every_sink_gets_every_record_and_the_audit_log_keeps_its_own() {
        let dir = std::env::temp_dir().join(format!(
            "facegate-sink-{}-{}",
            std::process::id(),
            crate::gallery::now_ms()
        ));
        let audit = Arc::new(
            AuditLog::open(&dir, 100, &crate::crypto::DeviceKey::generate().unwrap()).unwrap(),
        );
        let kept = Arc::new(Mutex::new(Vec::new()));
        let lines = Shared::default();
        {
            let (tx, rx) = std::sync::mpsc::channel();
            let now = crate::gallery::now_ms();
            tx.send(granted(now)).unwrap();
            tx.send(Record::Door {
                at_ms: now + 1,
                event: DoorEvent::Unlocked {
                    by: UnlockBy::Remote,
                },
                latency_ms: None,
            })
            .unwrap();
            tx.send(Record::Door {
                at_ms: now + 2,
                event: DoorEvent::Closed,
                latency_ms: None,
            })
            .unwrap();
            drop(tx);
            FanOut::new()
                .with(JsonLines(lines.clone()))
                .with(Keep(Arc::clone(&kept)))
                .with(AuditSink::new(
                    Arc::clone(&audit),
                    SpaceGuard::new(vec![dir.clone()], 0),
                ))
                .drain(&rx)
                .unwrap();
        }
        assert_eq!(kept.lock().unwrap().len(), 3);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        let events = audit
            .query(&EventFilter::default(), None, 10)
            .unwrap()
            .events;
        let outcomes: Vec<Outcome> = events.iter().map(|e| e.outcome).collect();
        // A door closing is printed but not an audit event.
        assert_eq!(outcomes, [Outcome::Unlocked, Outcome::Granted]);

        // A full disk: nothing written, counted instead.
        let mut full = AuditSink::new(
            Arc::clone(&audit),
            SpaceGuard::new(vec![dir.clone()], u64::MAX),
        );
        full.record(&granted(crate::gallery::now_ms()));
        assert_eq!(full.unlogged(), 1);
        assert_eq!(audit.len(), 2);
        drop((full, audit));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_published_request_is_in_the_audit_log_at_once_and_a_full_disk_refuses_it() {
        use crate::access::{Action, EventSource, NewEvent};
        let dir = std::env::temp_dir().join(format!(
            "facegate-sinks-{}-{}",
            std::process::id(),
            crate::gallery::now_ms()
        ));
        let audit = Arc::new(
            AuditLog::open(&dir, 100, &crate::crypto::DeviceKey::generate().unwrap()).unwrap(),
        );
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sinks = Sinks::audit(Arc::clone(&audit), SpaceGuard::new(vec![dir.clone()], 0));
        sinks.add(Keep(Arc::clone(&kept)));
        let request = |person: &str| Record::Request {
            at_ms: crate::gallery::now_ms(),
            event: NewEvent::new(Action::DeletePerson, Outcome::Deleted, EventSource::Cli)
                .person(person),
        };
        sinks.publish(&[request("a"), request("b")]).unwrap();
        assert_eq!(audit.len(), 2);
        assert_eq!(kept.lock().unwrap().len(), 2, "every sink gets them");
        let events = audit
            .query(&EventFilter::default(), None, 10)
            .unwrap()
            .events;
        assert!(events.iter().all(|e| e.source == EventSource::Cli));
        // The JSON line of a request carries its event (not the crop).
        let line = serde_json::to_string(&request("c")).unwrap();
        assert!(line.contains(r#""kind":"request""#) && line.contains(r#""source":"cli""#));

        let full = Sinks::audit(
            Arc::clone(&audit),
            SpaceGuard::new(vec![dir.clone()], u64::MAX),
        );
        let refused = full.publish(&[request("d")]);
        assert!(matches!(refused, Err(SinkError::Space(_))), "{refused:?}");
        assert_eq!(audit.len(), 2, "nothing written on a full disk");
        drop((sinks, full, audit));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
