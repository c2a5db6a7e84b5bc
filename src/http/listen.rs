//! The one accept loop of every ragwall listener (`ragwall serve`, the Qdrant proxy): what a
//! client that connects and then sends nothing, or dribbles, or never leaves, can cost.
//!
//! Contract:
//! - at most `max_connections` connections at once; beyond that a new connection is closed at
//!   once (the listener keeps accepting, so file descriptors stay bounded and the process never
//!   sees `EMFILE` from clients alone);
//! - a connection must deliver complete request headers within `header_timeout_secs` of being
//!   accepted (TLS handshake included), and within `idle_timeout_secs` of its previous response;
//!   otherwise it is closed, whether it sent nothing or one byte at a time. Time spent inside a
//!   request (the handler and the streamed response body) never counts as idle;
//! - request bodies are read within `body_timeout_secs` by the services themselves
//!   ([`read_body`]), before they take a concurrency permit;
//! - on shutdown the loop stops accepting, asks every connection to finish its current request
//!   and close, and after `grace` closes whatever is left: shutdown always completes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// `[server.connections]` and `[proxy.connections]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Seconds from accepting a connection (TLS handshake included) to its complete request
    /// headers.
    pub header_timeout_secs: u64,
    /// Seconds a keep-alive connection may wait for its next request.
    pub idle_timeout_secs: u64,
    /// Seconds to receive a whole request body; slower clients get 408.
    pub body_timeout_secs: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 30,
        }
    }
}

impl ConnectionLimits {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0
            || self.header_timeout_secs == 0
            || self.idle_timeout_secs == 0
            || self.body_timeout_secs == 0
        {
            return Err("connections: every limit must be positive".into());
        }
        Ok(())
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }
}

/// Why a body could not be read: the services map these to 408 and 413.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body did not arrive within {0} s")]
    Timeout(u64),
    #[error("the request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("reading the request body: {0}")]
    Read(String),
}

/// Reads a whole body, at most `max` bytes, within the limits' body timeout.
pub async fn read_body<B>(
    body: B,
    max: usize,
    limits: &ConnectionLimits,
) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limited = http_body_util::Limited::new(body, max);
    match tokio::time::timeout(limits.body_timeout(), limited.collect()).await {
        Err(_) => Err(BodyError::Timeout(limits.body_timeout_secs)),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge(max)),
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}

/// Responses that refuse a request before its body was read (401, 408, 411, 413, 415, 429, 431)
/// carry `Connection: close`: the unread body would otherwise be taken for the next request,
/// or the client would write it into a connection the server is closing.
pub async fn close_after_refusal(mut resp: axum::response::Response) -> axum::response::Response {
    if matches!(
        resp.status().as_u16(),
        401 | 408 | 411 | 413 | 415 | 429 | 431
    ) {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<(Instant, bool)>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new((Instant::now(), false)),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// How long the connection has waited for a request, and whether it has served one before.
    fn idle(&self) -> Option<(Duration, bool)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let (since, served) = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        Some((since.elapsed(), served))
    }
}

/// Held by a request until its response body is finished or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = (Instant::now(), true);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request in flight while it streams.
struct Tracked {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is set) within `limits` until `shutdown`
/// resolves, then drains for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: ConnectionLimits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if refused_logged.elapsed() > Duration::from_secs(10) {
                tracing::warn!(max = limits.max_connections, %peer, "connection limit reached; closing new connections");
                refused_logged = Instant::now();
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let limits = limits.clone();
        let tls = tls.clone();
        let stop = stop_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let header = Duration::from_secs(limits.header_timeout_secs);
            match tls {
                None => connection(stream, router, &limits, stop).await,
                Some(acceptor) => match tokio::time::timeout(header, acceptor.accept(stream)).await
                {
                    Ok(Ok(s)) => connection(s, router, &limits, stop).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = conns.len();
    if open > 0 {
        tracing::info!(open, grace_secs = grace.as_secs(), "draining connections");
    }
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            left = conns.len(),
            "shutdown grace over; closing the remaining connections"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// One HTTP/1.1 connection, watched for idleness.
async fn connection<I>(
    io: I,
    router: Router,
    limits: &ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let svc = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let in_flight = activity.begin();
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(Body::new)).await?;
                Ok::<_, std::convert::Infallible>(resp.map(|inner| {
                    Body::new(Tracked {
                        inner,
                        _in_flight: in_flight,
                    })
                }))
            }
        })
    };
    let header = Duration::from_secs(limits.header_timeout_secs);
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let tick = (header.min(idle) / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            c = stop.changed(), if !stopping => {
                stopping = true;
                if c.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
            _ = ticks.tick() => {
                if let Some((waited, served)) = activity.idle() {
                    let limit = if served { idle } else { header };
                    if waited >= limit || stopping {
                        return;
                    }
                }
            }
        }
    }
}
