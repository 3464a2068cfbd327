//! Load limits: a bounded inference queue over a pool of pipelines, and a per-client rate limit.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use governor::Quota;
use governor::clock::{Clock, DefaultClock};

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use super::error::{ApiError, ApiResult};
use crate::vision::{Models, Pipeline, VisionParams};

/// Runs image work on blocking threads, `slots` at a time, each with a pipeline of its own.
/// At most `slots + queue_depth` requests are admitted at once; the next gets 503.
pub struct Inference {
    models: Arc<Models>,
    params: VisionParams,
    pool: Arc<Mutex<Vec<Pipeline>>>,
    slots: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    n_slots: usize,
}

/// A place in the inference queue; released when dropped.
pub struct Admission {
    admitted: Arc<AtomicUsize>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inference {
    pub fn new(
        models: Arc<Models>,
        params: VisionParams,
        slots: usize,
        queue_depth: usize,
    ) -> Inference {
        let slots = slots.max(1);
        Inference {
            models,
            params,
            pool: Arc::new(Mutex::new(Vec::new())),
            slots: Arc::new(Semaphore::new(slots)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: slots + queue_depth,
            n_slots: slots,
        }
    }

    pub fn models(&self) -> &Models {
        &self.models
    }

    pub fn slots(&self) -> usize {
        self.n_slots
    }

    /// Requests admitted now (running or waiting).
    pub fn in_flight(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Take a place in the queue, or fail with 503 when it is full.
    pub fn try_admit(&self) -> ApiResult<Admission> {
        let ok = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok();
        if ok {
            Ok(Admission {
                admitted: Arc::clone(&self.admitted),
            })
        } else {
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "all {} inference slots are busy and {} requests are already waiting; retry shortly",
                    self.n_slots,
                    self.capacity - self.n_slots
                ),
            )
            .retry_after(1))
        }
    }

    fn take(&self) -> ApiResult<Pipeline> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match pooled {
            Some(p) => Ok(p),
            None => Pipeline::new(&self.models, self.params.clone()).map_err(ApiError::from),
        }
    }

    /// Run `work` with a pipeline on a blocking thread once a slot is free. The slot, the
    /// queue place and the pipeline stay with the thread until the work is done, even if the
    /// client goes away: the slots bound the CPU work actually running.
    pub async fn run<R, F>(&self, admission: Admission, work: F) -> ApiResult<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Pipeline) -> R + Send + 'static,
    {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("inference pool closed"))?;
        let mut pipeline = self.take()?;
        let pool = Arc::clone(&self.pool);
        let joined = tokio::task::spawn_blocking(move || {
            let r = work(&mut pipeline);
            pool.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(pipeline);
            drop(permit);
            drop(admission);
            r
        })
        .await;
        // On a panic the pipeline is lost with the thread; the next request makes a new one.
        joined.map_err(|e| ApiError::internal(format!("inference failed: {e}")))
    }
}

/// The per-client limiter of `governor` (GCRA, one state per address).
type Keyed<C> = governor::RateLimiter<
    IpAddr,
    governor::state::keyed::HashMapStateStore<IpAddr>,
    C,
    governor::middleware::NoOpMiddleware<<C as Clock>::Instant>,
>;

/// A rate limit per client address (`governor`'s keyed limiter), with a bound on how many
/// addresses it remembers.
pub struct RateLimiter<C: Clock = DefaultClock> {
    quota: Quota,
    clock: C,
    keyed: RwLock<Keyed<C>>,
}

/// Remember at most this many clients: beyond it, those whose allowance is whole again are
/// forgotten, and if that is not enough, every client (memory stays bounded when many
/// addresses, e.g. an IPv6 range, take turns).
const MAX_CLIENTS: usize = 10_000;

impl RateLimiter {
    pub fn new(per_minute: u32, burst: u32) -> RateLimiter {
        RateLimiter::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C> {
    /// `per_minute` requests a minute in bursts of up to `burst`, on `clock`.
    pub fn with_clock(per_minute: u32, burst: u32, clock: C) -> RateLimiter<C> {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        RateLimiter {
            quota,
            keyed: RwLock::new(governor::RateLimiter::hashmap_with_clock(
                quota,
                clock.clone(),
            )),
            clock,
        }
    }

    /// Take one request's allowance for `client`, or fail with 429 and the seconds until the
    /// next is allowed.
    pub fn check(&self, client: IpAddr) -> ApiResult<()> {
        if self.remembered() >= MAX_CLIENTS {
            self.forget();
        }
        let verdict = self
            .keyed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .check_key(&client);
        verdict.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let wait = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let per_minute = 60.0 / self.quota.replenish_interval().as_secs_f64();
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many verify/identify requests from this client (limit {per_minute:.0} per minute, bursts of {}); retry in {wait} s",
                    self.quota.burst_size()
                ),
            )
            .retry_after(wait.max(1))
        })
    }

    /// How many clients are remembered.
    fn remembered(&self) -> usize {
        self.keyed.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Forget the clients whose allowance is whole again; all of them if still too many.
    fn forget(&self) {
        let mut keyed = self.keyed.write().unwrap_or_else(|p| p.into_inner());
        keyed.retain_recent();
        keyed.shrink_to_fit();
        if keyed.len() >= MAX_CLIENTS {
            *keyed = governor::RateLimiter::hashmap_with_clock(self.quota, self.clock.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Two inference slots run two requests at the same time, each with a pipeline of its own,
    /// and a third request beyond the slots and the queue is refused at once (issue #15: the
    /// API did not gain from 1 to 20 users; nothing here may serialise the slots). Each job
    /// waits for the other to have started: with one job at a time the first would never see
    /// the second, and its wait would end at the guard (60 s, a hang guard, not a time limit).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_slots_run_two_requests_at_once() {
        use std::sync::mpsc;
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
        let models = Models::load(&dir, "blazeface-front-128", Some("mobilefacenet")).unwrap();
        let inference = Arc::new(Inference::new(
            Arc::new(models),
            VisionParams::default(),
            2,
            0,
        ));
        let (a_in, a_seen) = mpsc::channel::<usize>();
        let (b_in, b_seen) = mpsc::channel::<usize>();
        // Each job holds its slot until the test has tried a third admission (on a loaded
        // machine both could otherwise finish, and give their slots back, before it).
        let (go_a, a_go) = mpsc::channel::<()>();
        let (go_b, b_go) = mpsc::channel::<()>();
        let job = |inference: Arc<Inference>,
                   mine: mpsc::Sender<usize>,
                   other: mpsc::Receiver<usize>,
                   go: mpsc::Receiver<()>| {
            let admission = inference.try_admit().unwrap();
            async move {
                inference
                    .run(admission, move |pipeline| {
                        let me = pipeline as *mut Pipeline as usize;
                        // The other job may be gone already only when the slots ran one at a time.
                        let _ = mine.send(me);
                        let theirs = other.recv_timeout(Duration::from_secs(60)).ok();
                        let _ = go.recv_timeout(Duration::from_secs(60));
                        (me, theirs)
                    })
                    .await
                    .unwrap()
            }
        };
        let first = tokio::spawn(job(Arc::clone(&inference), a_in, b_seen, a_go));
        let second = tokio::spawn(job(Arc::clone(&inference), b_in, a_seen, b_go));
        let third = inference.try_admit();
        assert_eq!(
            third.err().map(|e| e.status),
            Some(StatusCode::SERVICE_UNAVAILABLE),
            "2 slots and no queue: a third request is refused while two run"
        );
        go_a.send(()).unwrap();
        go_b.send(()).unwrap();
        let (a, b) = (first.await.unwrap(), second.await.unwrap());
        assert_eq!(
            a.1,
            Some(b.0),
            "the first job saw the second start while it ran"
        );
        assert_eq!(
            b.1,
            Some(a.0),
            "the second job saw the first start while it ran"
        );
        assert_ne!(a.0, b.0, "each slot has its own pipeline");
        assert_eq!(inference.in_flight(), 0, "both places are given back");
    }

    #[test]
    fn each_client_is_limited_to_its_burst_then_its_rate() {
        let clock = governor::clock::FakeRelativeClock::default();
        let r = RateLimiter::with_clock(60, 2, clock.clone());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(r.check(ip).is_ok());
        assert!(r.check(ip).is_ok());
        let e = r.check(ip).unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.retry_after_s, Some(1));
        assert!(r.check(other).is_ok(), "clients have their own allowance");
        clock.advance(Duration::from_millis(1000));
        assert!(r.check(ip).is_ok());
        clock.advance(Duration::from_millis(500));
        assert!(r.check(ip).is_err());
    }

    #[test]
    fn the_clients_remembered_stay_bounded() {
        let clock = governor::clock::FakeRelativeClock::default();
        let r = RateLimiter::with_clock(60, 2, clock.clone());
        // Every address keeps a recent request: forgetting whole allowances is not enough.
        for i in 0..(MAX_CLIENTS as u32 + 5) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(r.check(ip).is_ok(), "a new client gets its burst");
        }
        assert!(r.remembered() <= 5 + 1, "{} remembered", r.remembered());
        // Addresses whose allowance is whole again are the first to go.
        clock.advance(Duration::from_secs(10));
        let ip: IpAddr = "10.1.0.1".parse().unwrap();
        assert!(r.check(ip).is_ok());
        assert!(r.check(ip).is_ok());
        assert!(r.check(ip).is_err(), "a remembered client is still limited");
    }
}
