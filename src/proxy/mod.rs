//! `ragwall proxy`: a transparent Qdrant REST proxy that scans every point payload on its way
//! to the client.
//!
//! # Contract
//!
//! - **Transparent.** Every request (method, path, query, headers including Qdrant's `api-key`
//!   and `authorization`, body) is forwarded; a response that carries no point payloads comes
//!   back with its status, headers and body bytes unchanged, and so does a point-bearing response
//!   that no decision changes (plus `x-ragwall-*` headers).
//! - **Complete.** Points are found by the response's JSON shape (`shape.rs`), not by endpoint,
//!   so every search/query/recommend/discover/scroll/retrieve variant, batches and groups, and
//!   any future endpoint returning points are scanned. The path is canonicalized before anything
//!   reads it and the canonical path is what Qdrant gets (`route.rs`), so no spelling of a path
//!   changes which collection's rules apply. Compressed bodies are decoded before scanning; the
//!   client's `accept-encoding` is narrowed to what the proxy decodes.
//! - **In Qdrant's shapes.** Quarantined points are removed (order and scores of the rest
//!   untouched), tagged points get a `ragwall` payload object, text fields are wrapped when
//!   `[proxy] wrap = true` (`rewrite.rs`); groups and batches keep their structure.
//! - **Scan once.** A point carrying a valid stamp (`crate::stamp`) for its current text,
//!   detector, policy version and collection is not rescanned.
//! - **Fail closed.** Upstream unreachable → 502, timeout → 504, unscannable body → 502,
//!   classifier failure → 503, overload → 503 with `Retry-After`, policy block → 403, all in
//!   Qdrant's error shape (`errors.rs`); `fail_open` passes unscannable responses with
//!   `x-ragwall-fail-open` instead.
//! - **Optional ingestion scanning** of upserts (`ingest.rs`) and optional API keys of its own
//!   (`x-ragwall-api-key`), separate from Qdrant's.
//!
//! The proxy's own routes live under `/_ragwall/` (`healthz`, `metrics`), a prefix Qdrant
//! never uses. The request flow is in `phases.rs`.

pub mod bignum;
pub mod config;
pub mod errors;
pub mod ingest;
pub mod metrics;
pub mod payload;
pub mod phases;
pub mod rewrite;
pub mod route;
pub mod scan;
pub mod shape;
pub mod upstream;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use http::HeaderMap;

pub use config::{IngestPolicy, ProxyConfig};

use crate::config::Config;
use crate::firewall::Firewall;
use crate::http::auth::ApiKeys;
use crate::proxy::errors::ProxyError;
use crate::proxy::metrics::ProxyMetrics;
use crate::proxy::rewrite::WrapWith;
use crate::proxy::scan::Scanner;
use crate::proxy::upstream::Upstream;
use crate::stamp::StampKey;
use crate::wrap::WrapMode;

/// Why the proxy cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid [proxy] configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Key(#[from] crate::stamp::KeyError),
    #[error(transparent)]
    Auth(#[from] crate::http::auth::AuthError),
}

/// The proxy's shared state.
#[derive(Debug)]
pub struct Proxy {
    cfg: ProxyConfig,
    scanner: Arc<Scanner>,
    upstream: Upstream,
    wrap: (WrapMode, char),
    api_keys: Option<ApiKeys>,
    metrics: ProxyMetrics,
}

impl Proxy {
    /// Builds the proxy from a validated config and a firewall.
    pub fn new(config: &Config, fw: Arc<Firewall>) -> Result<Self, StartError> {
        let cfg = config.proxy.clone();
        cfg.validate().map_err(StartError::Config)?;
        let key = StampKey::load(cfg.stamp_key_file.as_deref())?;
        if key.is_none() && matches!(cfg.ingest.policy, IngestPolicy::Tag) {
            return Err(StartError::Config(
                "proxy.ingest.policy = \"tag\" writes stamps and needs a stamp key \
                 (proxy.stamp_key_file or RAGWALL_STAMP_KEY)"
                    .into(),
            ));
        }
        let scanner =
            Scanner::new(fw, &cfg, config.normalize.clone(), key).map_err(StartError::Config)?;
        let upstream = Upstream::new(&cfg).map_err(StartError::Config)?;
        let api_keys = ApiKeys::from_config(&cfg.auth)?;
        Ok(Proxy {
            scanner: Arc::new(scanner),
            upstream,
            wrap: (config.wrap.mode, config.wrap.datamark),
            api_keys,
            metrics: ProxyMetrics::new(),
            cfg,
        })
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// Wrapping for one response (a fresh nonce), when enabled.
    fn wrap_with(&self) -> Option<WrapWith> {
        self.cfg.wrap.then(|| WrapWith {
            mode: self.wrap.0,
            marker: self.wrap.1,
            nonce: crate::wrap::new_nonce(),
        })
    }

    /// Checks ragwall's own API key (`x-ragwall-api-key`) with the shared key store
    /// (`crate::http::auth`: hashed keys, constant-time comparison). The service's bearer-token
    /// layer cannot be used here: `authorization` belongs to Qdrant and is forwarded.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        let Some(keys) = &self.api_keys else {
            return Ok(());
        };
        let mut given = headers.get_all(upstream::API_KEY_HEADER).iter();
        match (given.next(), given.next()) {
            (Some(k), None) if keys.verify(k.as_bytes()) => Ok(()),
            _ => Err(ProxyError::Unauthorized),
        }
    }

    /// The proxy's router: its own routes under `/_ragwall/`, everything else proxied.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/_ragwall/healthz", get(healthz))
            .route("/_ragwall/metrics", get(metrics_route))
            .fallback(phases::handle)
            .layer(axum::middleware::map_response(
                crate::http::listen::close_after_refusal,
            ))
            .with_state(self)
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn metrics_route(
    State(p): State<Arc<Proxy>>,
    headers: HeaderMap,
) -> axum::response::Response {
    if let Err(e) = p.authorize(&headers) {
        return e.to_response(std::time::Duration::ZERO);
    }
    (
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        p.metrics.render(),
    )
        .into_response()
}

/// Serves `proxy` on `listener` until `shutdown` resolves, then drains in-flight requests for at
/// most `[proxy] shutdown_grace_secs`. Connection limits and timeouts are `[proxy.connections]`
/// (see [`crate::http::listen`]).
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = proxy.cfg.connections.clone();
    let grace = std::time::Duration::from_secs(proxy.cfg.shutdown_grace_secs);
    crate::http::listen::serve(listener, None, proxy.router(), limits, grace, shutdown).await
}
