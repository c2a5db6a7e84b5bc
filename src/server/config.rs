//! `[server]`: where `ragwall serve` listens and how it protects itself.
//!
//! Per-request chunk limits are the core's `[limits]` (`max_chunks_per_call`, `max_chunk_bytes`);
//! this section adds what only an HTTP service needs: the body cap, the deadline, the concurrency
//! limit, TLS, API keys and the audit log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::auth::AuthConfig;
use crate::http::listen::ConnectionLimits;

/// `[server]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Loopback by default: exposing the service is a deliberate choice.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger bodies are refused with 413 before they
    /// are parsed.
    pub max_body_bytes: usize,
    /// Time a `/v1/scan` or `/v1/guard` request may take, in milliseconds, queueing included;
    /// past it the client gets 504 and nothing it sent is returned as scanned.
    pub deadline_ms: u64,
    /// Scan/guard requests processed at once; more are refused at once with 429.
    pub max_concurrent_requests: usize,
    /// `Retry-After` (seconds) sent with 429 and 503 answers.
    pub retry_after_secs: u64,
    /// On SIGTERM/Ctrl-C, seconds in-flight requests get to finish before connections close.
    pub shutdown_grace_secs: u64,
    /// PEM certificate chain; with `tls_key`, the service speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Append-only, hash-chained JSON-lines audit log of every non-allow decision
    /// (check it with `ragwall audit verify FILE`); unset disables it.
    pub audit_log: Option<PathBuf>,
    /// fsync the audit log after every write (durable across power loss, slower).
    pub audit_fsync: bool,
    /// API keys for `/v1/*`; authentication is on when a key source is set.
    pub auth: AuthConfig,
    /// Connection cap and header, idle and body timeouts (`[server.connections]`).
    pub connections: ConnectionLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 16 * 1024 * 1024,
            deadline_ms: 10_000,
            max_concurrent_requests: 64,
            retry_after_secs: 1,
            shutdown_grace_secs: 30,
            tls_cert: None,
            tls_key: None,
            audit_log: None,
            audit_fsync: false,
            auth: AuthConfig::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

impl ServerConfig {
    /// Checks what can be checked without touching the network or the files.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_body_bytes == 0 || self.deadline_ms == 0 || self.max_concurrent_requests == 0 {
            return Err(
                "server.max_body_bytes, deadline_ms and max_concurrent_requests must be positive"
                    .into(),
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("server.tls_cert and server.tls_key must be set together".into());
        }
        self.connections
            .validate()
            .map_err(|e| format!("server.{e}"))
    }

    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}
