//! `ragwall serve`: the firewall as an HTTP microservice (axum).
//!
//! Contract:
//! - Routes: `POST /v1/scan` (verdict per chunk), `POST /v1/guard` (passing chunks, wrapped
//!   context and system instruction; 403 if any chunk is blocked), `GET /v1/model`,
//!   `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` (generated from the
//!   handlers' annotations). Wire format in [`api`], statuses in [`errors`].
//! - Inspection runs on tokio's blocking pool, never on an async worker; the classifier's own
//!   bounded queue answers overload at once (503), the concurrency limit answers 429, the
//!   deadline 504 (see [`middleware`] for the order of layers); connections, headers and bodies
//!   are bounded by `[server.connections]` ([`crate::http::listen`]).
//! - Fail closed: a request whose chunks could not all be inspected returns an error, never a
//!   verdict; a chunk that could not be scanned is marked `scanned: false` with the policy's
//!   `on_error` action and never reaches a wrapped context.
//! - Every non-allow or unscanned decision is appended to the hash-chained [`audit`] log, and the
//!   request fails (500) if it cannot be.
//! - [`App::router`] is the whole app as an `axum::Router`; [`serve`] runs it on a listener with
//!   optional TLS and graceful shutdown; [`run`] is `ragwall serve`.

pub mod api;
mod app;
pub mod audit;
pub mod config;
pub mod errors;
pub mod extract;
pub mod handlers;
pub mod metrics;
pub mod middleware;
pub mod tls;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::TcpListener;

pub use app::App;
pub use config::ServerConfig;

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Auth(#[from] crate::http::auth::AuthError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("model warm-up failed: {0}")]
    WarmUp(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting connections and
/// gives in-flight requests `[server] shutdown_grace_secs` to finish (then closes the rest).
/// HTTPS when `[server]` names a certificate and key. Connection limits and timeouts are
/// `[server.connections]` (see [`crate::http::listen`]).
#[tracing::instrument(skip_all)]
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let cfg = app.config().clone();
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(tls::load(c, k)?),
        _ => None,
    };
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let grace = cfg.shutdown_grace();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "stopping: finishing in-flight requests"
        );
    };
    crate::http::listen::serve(
        listener,
        tls,
        app.router(),
        cfg.connections.clone(),
        grace,
        shutdown,
    )
    .await?;
    // Closing the log makes the printed head final: a request still inspecting after the drain
    // fails closed instead of appending behind it.
    if let Some(audit) = app.audit() {
        match audit.close() {
            Ok(head) => {
                tracing::info!(path = %audit.path().display(), head, "audit log head at shutdown");
            }
            Err(e) => tracing::error!(error = %e, "closing the audit log"),
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// `ragwall serve`: binds `[server] listen`, warms the model up in the background (`/readyz`
/// turns 200 when done; a failed warm-up stops the service), and serves until SIGTERM/Ctrl-C.
#[tracing::instrument(skip_all)]
pub async fn run(app: App) -> Result<(), ServerError> {
    let addr = app.config().listen;
    let listener = TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    let scheme = if app.config().tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!("listening on {scheme}://{}", listener.local_addr()?);
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    let warm = app.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = warm.warm_up() {
            let _ = failed_tx.send(e.to_string());
        }
    });
    let (why_tx, why_rx) = tokio::sync::oneshot::channel::<String>();
    let shutdown = async move {
        tokio::select! {
            () = crate::http::shutdown::shutdown_signal() => {}
            Ok(e) = failed_rx => {
                tracing::error!(error = %e, "model warm-up failed; stopping");
                let _ = why_tx.send(e);
            }
        }
    };
    serve(app, listener, shutdown).await?;
    match why_rx.await {
        Ok(e) => Err(ServerError::WarmUp(e)),
        Err(_) => Ok(()),
    }
}
