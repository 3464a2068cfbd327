//! The HTTP/1.1 server under the API: hyper with a header-read and idle timeout, a bound on open
//! connections, TLS handshakes with a timeout, and a graceful stop.
//!
//! - A client must send a request's headers within `api.header_timeout_s`, and an idle
//!   keep-alive connection is closed after the same time (hyper's header-read timer runs
//!   whenever the connection waits for a request).
//! - At most `api.max_connections` are open: a new connection beyond it asks the oldest one to
//!   close (hyper's graceful shutdown: at once when idle or half-way through its headers, after
//!   the response when a request is running). Idle or slow clients cannot lock others out, and
//!   the process stays well within its open-file limit.
//! - When the shutdown future completes, the listener is closed, every connection is asked to
//!   close, and running requests get [`DRAIN_TIMEOUT`] to finish.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use super::ClientAddr;

/// Longest a client may take for its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long running requests may take to finish once the server stops.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection settings (from `[api]`).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// The open connections, oldest first, each with the token that asks it to close.
#[derive(Default)]
struct Connections {
    next: u64,
    open: VecDeque<(u64, CancellationToken)>,
}

impl Connections {
    /// Register a new connection; beyond `max`, the oldest are asked to close.
    fn admit(&mut self, max: usize) -> (u64, CancellationToken) {
        while self.open.len() >= max.max(1) {
            match self.open.pop_front() {
                Some((_, oldest)) => oldest.cancel(),
                None => break,
            }
        }
        self.next += 1;
        let token = CancellationToken::new();
        self.open.push_back((self.next, token.clone()));
        (self.next, token)
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.open.iter().position(|(n, _)| *n == id) {
            self.open.remove(i);
        }
    }
}

/// Serve `router` on `listener` (HTTPS when `tls` is given) until `shutdown` completes.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    limits: ServerLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let tracker = TaskTracker::new();
    let stopping = CancellationToken::new();
    let connections = Arc::new(Mutex::new(Connections::default()));
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // moment rather than spin; the bound on connections keeps this rare.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (id, close) = connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(limits.max_connections);
        let (router, acceptor, stopping, connections) = (
            router.clone(),
            acceptor.clone(),
            stopping.clone(),
            Arc::clone(&connections),
        );
        tracker.spawn(async move {
            connection(stream, addr, acceptor, router, limits, close, stopping).await;
            connections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        });
    }
    drop(listener);
    stopping.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running {} s after the stop; dropped",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    router: Router,
    limits: ServerLimits,
    close: CancellationToken,
    stopping: CancellationToken,
) {
    match acceptor {
        None => http(stream, addr, router, limits, close, stopping).await,
        Some(acceptor) => {
            let handshake = tokio::select! {
                r = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => r,
                _ = close.cancelled() => return,
                _ = stopping.cancelled() => return,
            };
            match handshake {
                Ok(Ok(tls)) => http(tls, addr, router, limits, close, stopping).await,
                Ok(Err(e)) => tracing::debug!(client = %addr, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<I>(
    io: I,
    addr: SocketAddr,
    router: Router,
    limits: ServerLimits,
    close: CancellationToken,
    stopping: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(ClientAddr(addr)));
        let mut router = router.clone();
        router.call(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = close.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
        _ = stopping.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(client = %addr, "connection: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_bound_the_oldest_connections_are_asked_to_close() {
        let mut c = Connections::default();
        let (a, ta) = c.admit(2);
        let (_b, tb) = c.admit(2);
        assert!(!ta.is_cancelled() && !tb.is_cancelled());
        let (_c, tc) = c.admit(2);
        assert!(ta.is_cancelled(), "the oldest goes first");
        assert!(!tb.is_cancelled() && !tc.is_cancelled());
        c.remove(a); // already gone: nothing happens
        assert_eq!(c.open.len(), 2);
    }
}
