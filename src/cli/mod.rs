//! Command-line adapters. Each subcommand is a module with a `run` function that takes parsed
//! arguments and returns an exit code; argument parsing lives here, I/O in the modules, and
//! `main.rs` only sets up logging and turns errors into messages.

pub mod check_config;
pub mod classify;
pub mod eval;
pub mod guard;
pub mod jsonl;
pub mod model;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::policy::Action;
use crate::wrap::WrapMode;

/// ragwall — a retrieval firewall for RAG systems.
#[derive(Debug, Parser)]
#[command(name = "ragwall", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML; see ragwall.example.toml). Defaults apply without one.
    #[arg(long, short, global = true, env = "RAGWALL_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log filter (tracing syntax, e.g. `info` or `ragwall=debug`).
    #[arg(long, global = true, env = "RAGWALL_LOG", default_value = "warn")]
    pub log: String,

    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "RAGWALL_LOG_JSON")]
    pub log_json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan chunks from a JSONL file and print one JSON verdict per line.
    Guard(GuardArgs),
    /// Validate a configuration file, load its detectors, and print what it resolves to.
    CheckConfig(CheckConfigArgs),
    /// Score chunks with the ONNX classifier alone (after normalization).
    Classify(ClassifyArgs),
    /// Inspect the classifier model.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Measure detection quality on labelled JSONL ({"text":…,"label":0|1,"source":…}).
    Eval(EvalArgs),
    /// Transparent Qdrant REST proxy: forwards every request to Qdrant and scans every point
    /// payload in its responses (see [proxy] in ragwall.example.toml).
    Proxy(ProxyArgs),
    /// Serve the firewall over HTTP: POST /v1/scan, POST /v1/guard, GET /v1/model, /healthz,
    /// /readyz, /metrics, /openapi.json (see [server] in ragwall.example.toml).
    Serve(ServeArgs),
    /// Work with the audit log written by `ragwall serve`.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Scan offline: whole Qdrant collections (stamp verdicts into payloads, move flagged points
    /// to a quarantine collection) or files before they are embedded (see [scan] in
    /// ragwall.example.toml).
    Scan(ScanArgs),
}

#[derive(Debug, clap::Args)]
pub struct ClassifyArgs {
    /// Input JSONL, one chunk per line ({"id":…,"text":…}); `-` reads standard input.
    #[arg(long, short, env = "RAGWALL_INPUT")]
    pub input: PathBuf,

    /// Chunks per batch.
    #[arg(long, env = "RAGWALL_BATCH", default_value_t = 32)]
    pub batch: usize,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Verify every file's sha256 and print the manifest.
    Info(ModelInfoArgs),
}

#[derive(Debug, clap::Args)]
pub struct ModelInfoArgs {
    /// Model directory; defaults to classifier.model_dir, then the bundled default model.
    #[arg(long, env = "RAGWALL_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Labelled JSONL: "text", "label" (0/1), optional "collection" and any string fields to
    /// group by ("source", "kind", "genre", "category", "language", "split", …).
    #[arg(long, env = "RAGWALL_EVAL_DATA")]
    pub data: PathBuf,

    /// Fields to group the report by, comma-separated (e.g. `genre,category,language`).
    #[arg(long, value_delimiter = ',', default_value = "source,kind")]
    pub by: Vec<String>,

    /// Only examples whose field has this value, e.g. `--where split=test` (repeatable; all must
    /// hold).
    #[arg(long = "where", value_name = "FIELD=VALUE", value_parser = parse_where)]
    pub filters: Vec<(String, String)>,

    /// Write every example's outcome (line, label, score, action, reasons, fields) as JSONL.
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// TOML file of floors/ceilings (min_recall, max_fpr, max_tag_fpr, min_accuracy,
    /// min_roc_auc) for [overall], [groups.FIELD.VALUE] ([sources.NAME] and [kinds.NAME] are
    /// shorthands); exit status 1 when any is violated.
    #[arg(long, env = "RAGWALL_EVAL_GATE")]
    pub gate: Option<PathBuf>,

    /// Examples per batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
}

fn parse_where(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected FIELD=VALUE, not {s:?}")),
    }
}

#[derive(Debug, clap::Args)]
pub struct GuardArgs {
    /// Input JSONL, one chunk per line: {"id":…,"text":…} plus optional "collection",
    /// "source", "metadata". `-` reads standard input.
    #[arg(long, short, env = "RAGWALL_INPUT")]
    pub input: PathBuf,

    /// Also wrap the surviving chunks for the prompt: delimit, datamark or base64. Each passing
    /// verdict gets its "wrapped" block and a final line carries the context and the system
    /// instruction.
    #[arg(long, env = "RAGWALL_WRAP")]
    pub wrap: Option<WrapMode>,

    /// Collection applied to chunks that do not name one (selects policy overrides).
    #[arg(long, env = "RAGWALL_COLLECTION")]
    pub collection: Option<String>,

    /// Exit with status 1 when any chunk's action is at least this (tag, quarantine, block).
    #[arg(long, env = "RAGWALL_FAIL_ON")]
    pub fail_on: Option<Action>,

    /// Chunks per detector batch.
    #[arg(long, env = "RAGWALL_BATCH", default_value_t = 32)]
    pub batch: usize,
}

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {
    /// Qdrant's REST base URL, e.g. http://127.0.0.1:6333 (overrides proxy.upstream).
    #[arg(long, env = "RAGWALL_UPSTREAM")]
    pub upstream: Option<String>,

    /// Address to listen on, e.g. 0.0.0.0:6335 (overrides proxy.listen).
    #[arg(long, env = "RAGWALL_LISTEN")]
    pub listen: Option<String>,

    /// Pass responses that cannot be scanned (classifier failure or overload, unparseable body)
    /// through, marked with x-ragwall-fail-open, instead of answering 502/503 (overrides
    /// proxy.fail_open).
    #[arg(long, env = "RAGWALL_FAIL_OPEN")]
    pub fail_open: bool,

    /// File holding the HMAC key of stamps (overrides proxy.stamp_key_file; without either,
    /// RAGWALL_STAMP_KEY is used).
    #[arg(long, env = "RAGWALL_STAMP_KEY_FILE")]
    pub stamp_key_file: Option<PathBuf>,

    /// Scanning of upserts: off, reject, tag or quarantine-collection (overrides
    /// proxy.ingest.policy).
    #[arg(long, env = "RAGWALL_INGEST")]
    pub ingest: Option<crate::proxy::IngestPolicy>,
}

impl ProxyArgs {
    /// Applies the flags that were given over `[proxy]`.
    pub fn apply(self, p: &mut crate::proxy::ProxyConfig) {
        p.upstream = self.upstream.unwrap_or(std::mem::take(&mut p.upstream));
        p.listen = self.listen.unwrap_or(std::mem::take(&mut p.listen));
        p.fail_open |= self.fail_open;
        p.stamp_key_file = self.stamp_key_file.or(p.stamp_key_file.take());
        p.ingest.policy = self.ingest.unwrap_or(p.ingest.policy);
    }
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080 (overrides server.listen).
    #[arg(long, env = "RAGWALL_SERVE_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,

    /// PEM certificate chain; with --tls-key the service speaks HTTPS only (overrides
    /// server.tls_cert).
    #[arg(long, env = "RAGWALL_SERVE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key matching --tls-cert (overrides server.tls_key).
    #[arg(long, env = "RAGWALL_SERVE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// File of API keys, one per line; clients send `Authorization: Bearer <key>` (overrides
    /// server.auth.keys_file).
    #[arg(long, env = "RAGWALL_SERVE_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,

    /// Name of an environment variable holding API keys separated by commas or whitespace
    /// (overrides server.auth.keys_env).
    #[arg(long, env = "RAGWALL_SERVE_API_KEYS_ENV")]
    pub api_keys_env: Option<String>,

    /// Hash-chained audit log of every non-allow decision (overrides server.audit_log).
    #[arg(long, env = "RAGWALL_SERVE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// Largest request body in bytes (overrides server.max_body_bytes).
    #[arg(long, env = "RAGWALL_SERVE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Per-request deadline in milliseconds (overrides server.deadline_ms).
    #[arg(long, env = "RAGWALL_SERVE_DEADLINE_MS")]
    pub deadline_ms: Option<u64>,

    /// Scan/guard requests processed at once; more get 429 (overrides
    /// server.max_concurrent_requests).
    #[arg(long, env = "RAGWALL_SERVE_MAX_CONCURRENT")]
    pub max_concurrent_requests: Option<usize>,
}

impl ServeArgs {
    /// Applies the flags that were given over `[server]`.
    pub fn apply(self, s: &mut crate::server::ServerConfig) {
        s.listen = self.listen.unwrap_or(s.listen);
        s.tls_cert = self.tls_cert.or(s.tls_cert.take());
        s.tls_key = self.tls_key.or(s.tls_key.take());
        s.auth.keys_file = self.api_keys_file.or(s.auth.keys_file.take());
        s.auth.keys_env = self.api_keys_env.or(s.auth.keys_env.take());
        s.audit_log = self.audit_log.or(s.audit_log.take());
        s.max_body_bytes = self.max_body_bytes.unwrap_or(s.max_body_bytes);
        s.deadline_ms = self.deadline_ms.unwrap_or(s.deadline_ms);
        s.max_concurrent_requests = self
            .max_concurrent_requests
            .unwrap_or(s.max_concurrent_requests);
    }
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    #[command(subcommand)]
    pub target: ScanTarget,
}

#[derive(Debug, Subcommand)]
pub enum ScanTarget {
    /// Scan every point of a Qdrant collection over gRPC, in pages, resumably. Writes a report
    /// (JSON and Markdown); with --stamp and/or --quarantine also writes to Qdrant. Exit status
    /// 2 when points could not be scanned, 130 when interrupted (run again to resume).
    Qdrant(ScanQdrantArgs),
    /// Gate JSONL, text and Markdown files before they are embedded: passing records to --out,
    /// flagged ones to --quarantine. Exit status 2 when records could not be scanned.
    Files(ScanFilesArgs),
}

#[derive(Debug, clap::Args)]
pub struct ScanQdrantArgs {
    /// Qdrant's gRPC URL (port 6334 by default, not REST's 6333).
    #[arg(
        long,
        env = "RAGWALL_SCAN_URL",
        default_value = "http://127.0.0.1:6334"
    )]
    pub url: String,

    /// Collection to scan.
    #[arg(long, env = "RAGWALL_SCAN_COLLECTION")]
    pub collection: String,

    /// Qdrant API key (sent as `api-key`).
    #[arg(long, env = "RAGWALL_SCAN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Write nothing to Qdrant, only the report (the default without --stamp/--quarantine).
    #[arg(long, env = "RAGWALL_SCAN_DRY_RUN", conflicts_with_all = ["stamp", "quarantine"])]
    pub dry_run: bool,

    /// Write each point's signed verdict into its payload (key "ragwall"), only where it
    /// changed. Needs the proxy's stamp key ([proxy] stamp_key_file or RAGWALL_STAMP_KEY).
    #[arg(long, env = "RAGWALL_SCAN_STAMP")]
    pub stamp: bool,

    /// Copy points whose action is quarantine or block, with vectors and payload, into
    /// COLLECTION + [scan] quarantine_suffix (created with the same vector config), then
    /// delete them from COLLECTION.
    #[arg(long, env = "RAGWALL_SCAN_QUARANTINE")]
    pub quarantine: bool,

    /// Report file (JSON); the Markdown summary is written beside it with `.md`.
    #[arg(
        long,
        env = "RAGWALL_SCAN_OUT",
        default_value = "ragwall-scan-report.json"
    )]
    pub out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ScanFilesArgs {
    /// Files or directories (.jsonl, .txt, .md, .markdown).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,

    /// Output JSONL of the records that pass (JSONL lines verbatim, text files as
    /// {"id","text","source"}).
    #[arg(long, env = "RAGWALL_SCAN_FILES_OUT")]
    pub out: PathBuf,

    /// Output JSONL of flagged and unscannable records, each with its verdict.
    #[arg(long, env = "RAGWALL_SCAN_FILES_QUARANTINE")]
    pub quarantine: PathBuf,

    /// Report file (JSON); the Markdown summary is written beside it with `.md`.
    #[arg(long, env = "RAGWALL_SCAN_FILES_REPORT")]
    pub report: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check an audit log's hash chain: prints the line count and the head hash (anchor it
    /// elsewhere); exit status 1 and the first broken line when it does not verify.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct AuditVerifyArgs {
    /// Audit log (JSON lines written by `ragwall serve`).
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// Configuration file to check.
    pub file: PathBuf,
}
