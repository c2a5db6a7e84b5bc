//! `[proxy]`: where the Qdrant proxy listens, where Qdrant is, which payload fields are text, and
//! what it does when it cannot scan.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::http::auth::AuthConfig;
use crate::http::listen::ConnectionLimits;
use crate::proxy::payload::FieldPath;

/// `[proxy]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Qdrant's REST base URL (`http://host:6333`); plain HTTP only.
    pub upstream: String,
    /// Address the proxy listens on.
    pub listen: String,
    /// Seconds to wait for Qdrant's complete response.
    pub upstream_timeout_secs: u64,
    /// Largest request or response body the proxy buffers, in bytes (after decompression).
    /// Larger responses are refused (502): a payload that cannot be scanned is never passed.
    pub max_body_bytes: usize,
    /// Time one response's scan may take, in milliseconds; past it the client gets 504 (or, with
    /// `fail_open`, the response unscanned and marked) and the scan stops at its next batch.
    pub scan_deadline_ms: u64,
    /// Text of one point scanned at most, in bytes (its fields together; long fields are scanned
    /// in pieces of `[limits] max_chunk_bytes`). A point with more text gets `[policy]
    /// on_error`; the rest of the response is judged as usual.
    pub max_point_text_bytes: usize,
    /// Let snapshot downloads (`GET …/snapshots/{name}`) through, streamed and unscanned. Off by
    /// default: a snapshot holds every payload of a collection, and ragwall cannot scan it.
    /// Whether a response is scanned never depends on its content type.
    pub allow_snapshots: bool,
    /// On a scan failure (classifier error or overload, unparseable upstream body), pass the
    /// upstream response through unscanned and mark it with `x-ragwall-fail-open` instead of
    /// answering 502/503. Off by default: ragwall fails closed.
    pub fail_open: bool,
    /// Replace the text fields of passing points by their wrapped form (`[wrap]` mode).
    pub wrap: bool,
    /// Trust valid stamps (see `stamp.rs`) instead of rescanning.
    pub trust_stamps: bool,
    /// File holding the stamp key; unset means `RAGWALL_STAMP_KEY`; neither means stamps are
    /// neither written nor trusted.
    pub stamp_key_file: Option<PathBuf>,
    /// API keys of the proxy itself (`[proxy.auth]`: `keys_file` and/or `keys_env`), sent by
    /// clients in the `x-ragwall-api-key` header. Separate from Qdrant's own `api-key` and
    /// `authorization`, which are forwarded untouched. Unset means no proxy authentication.
    pub auth: AuthConfig,
    /// Text fields for collections not listed in `collections`: JSON paths (`text`,
    /// `chunk.body`, `tags[]`, `metadata.*`); empty means every string leaf of the payload.
    pub text_fields: Vec<String>,
    /// Per-collection text fields: `[proxy.collections.NAME] text_fields = [...]`.
    pub collections: BTreeMap<String, CollectionConfig>,
    /// Scanning of upserts.
    pub ingest: IngestConfig,
    /// Connection cap and header, idle and body timeouts (`[proxy.connections]`).
    pub connections: ConnectionLimits,
    /// On SIGTERM/Ctrl-C, seconds in-flight requests get to finish before connections close.
    pub shutdown_grace_secs: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            upstream: "http://127.0.0.1:6333".into(),
            listen: "127.0.0.1:6335".into(),
            upstream_timeout_secs: 30,
            max_body_bytes: 64 * 1024 * 1024,
            scan_deadline_ms: 30_000,
            max_point_text_bytes: 4 * 1024 * 1024,
            allow_snapshots: false,
            fail_open: false,
            wrap: false,
            trust_stamps: true,
            stamp_key_file: None,
            auth: AuthConfig::default(),
            text_fields: Vec::new(),
            collections: BTreeMap::new(),
            ingest: IngestConfig::default(),
            connections: ConnectionLimits::default(),
            shutdown_grace_secs: 30,
        }
    }
}

/// `[proxy.collections.NAME]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectionConfig {
    /// JSON paths of the text fields; empty means every string leaf.
    pub text_fields: Vec<String>,
}

/// What happens to an upsert carrying a point the policy would quarantine or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum IngestPolicy {
    /// Upserts are forwarded unscanned.
    #[default]
    Off,
    /// The whole request is refused (403) and nothing is written.
    Reject,
    /// Every point is written with a signed stamp carrying its verdict; reads then remove
    /// quarantined points without rescanning.
    Tag,
    /// Flagged points are written to `<collection><quarantine_suffix>` instead (which must
    /// exist with the same vector config); the others are written as asked.
    QuarantineCollection,
}

/// `[proxy.ingest]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub policy: IngestPolicy,
    /// Suffix of the quarantine collection for `quarantine-collection`.
    pub quarantine_suffix: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            policy: IngestPolicy::Off,
            quarantine_suffix: "_ragwall_quarantine".into(),
        }
    }
}

impl ProxyConfig {
    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), String> {
        crate::proxy::upstream::Upstream::parse_base(&self.upstream)?;
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("proxy.listen = {:?}: {e}", self.listen))?;
        if self.max_body_bytes == 0
            || self.upstream_timeout_secs == 0
            || self.max_point_text_bytes == 0
            || self.scan_deadline_ms == 0
        {
            return Err(
                "proxy.max_body_bytes, upstream_timeout_secs, max_point_text_bytes and \
                 scan_deadline_ms must be positive"
                    .into(),
            );
        }
        self.connections
            .validate()
            .map_err(|e| format!("proxy.{e}"))?;
        if self.ingest.quarantine_suffix.is_empty() {
            return Err("proxy.ingest.quarantine_suffix must not be empty".into());
        }
        for p in self
            .text_fields
            .iter()
            .chain(self.collections.values().flat_map(|c| &c.text_fields))
        {
            FieldPath::parse(p).map_err(|e| format!("proxy text field {p:?}: {e}"))?;
        }
        Ok(())
    }

    /// The text-field paths for `collection` (empty = every string leaf).
    pub fn fields_for(&self, collection: Option<&str>) -> &[String] {
        collection
            .and_then(|c| self.collections.get(c))
            .map(|c| c.text_fields.as_slice())
            .unwrap_or(&self.text_fields)
    }
}
