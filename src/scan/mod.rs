//! `ragwall scan`: the offline scanner. Scan once, enforce everywhere: whole Qdrant collections
//! (over gRPC) and documents before they are embedded are judged by the same firewall as live
//! traffic, verdicts are stamped into payloads, and what is dangerous is moved out of reach.
//!
//! # Contract
//!
//! - **Same judgement as the proxy.** Points are decided by the proxy's own
//!   [`Scanner`](crate::proxy::scan::Scanner): the same text fields (`[proxy] text_fields`), one
//!   chunk per field, the strictest field wins. Stamps are signed with the proxy's key
//!   (`[proxy] stamp_key_file` or `RAGWALL_STAMP_KEY`) for the scanned collection, so the proxy
//!   trusts them without rescanning.
//! - **Modes** ([`Mode`]): dry run (the default) writes only a report; `stamp` writes a stamp into
//!   every point's payload with `set_payload`, only where it changed; `quarantine` copies points
//!   whose action is `quarantine` or `block` (payload and vectors) into `NAME` +
//!   `[scan] quarantine_suffix` (created with the source's vector config) and only then deletes
//!   them from `NAME`.
//! - **Order per page** (`collection.rs`): scroll → classify → copy flagged points → delete them
//!   → stamp the rest → checkpoint. A failure anywhere before the checkpoint loses nothing: the
//!   page is scanned again on the next run, the copy is an idempotent upsert and a deleted point
//!   is no longer scrolled.
//! - **Resumable and polite.** The checkpoint (`checkpoint.rs`) holds the next scroll offset and
//!   the running tally; a run with the same URL, collection, mode, detector and policy continues
//!   from it. Page size and a points-per-second ceiling are configured in `[scan]`. Ctrl-C or
//!   SIGTERM stops after the current page (exit status 130).
//! - **Reports** (`report.rs`): JSON and Markdown, written to a temporary file and renamed.
//! - **Errors** are [`ScanError`]s with a message naming the fix; nothing is written to Qdrant
//!   before the collection has been found and the key accepted. Points without text fields are
//!   neither stamped nor moved, are listed in the report, and make the exit status 2.
//! - **Files** (`files.rs`): JSONL, text and Markdown are checked completely (UTF-8, JSON) before
//!   anything is classified, and the clean and quarantine outputs appear only when complete.

pub mod atomic;
pub mod checkpoint;
pub mod collection;
pub mod files;
pub mod plan;
pub mod progress;
pub mod qdrant;
pub mod report;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::firewall::{Firewall, FirewallError};
use crate::proxy::scan::Scanner;
use crate::stamp::{KEY_ENV, KeyError, StampKey};

pub use collection::{QdrantJob, scan_collection};
pub use files::{FilesJob, scan_files};
pub use report::Report;

/// `[scan]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Points per scroll page (and records per file batch); each page is classified as one
    /// batch and checkpointed.
    pub batch_size: u32,
    /// Most points scanned per second; 0 means as fast as the classifier goes.
    pub max_points_per_sec: f64,
    /// Timeout of one gRPC request to Qdrant, in seconds.
    pub timeout_secs: u64,
    /// Directory of checkpoint files (one per URL, collection and mode).
    pub checkpoint_dir: PathBuf,
    /// Suffix of the collection flagged points are moved to (`NAME` + suffix).
    pub quarantine_suffix: String,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            batch_size: 128,
            max_points_per_sec: 0.0,
            timeout_secs: 60,
            checkpoint_dir: PathBuf::from(".ragwall/scan"),
            quarantine_suffix: "__quarantine".into(),
        }
    }
}

impl ScanConfig {
    /// Checks what can be checked without Qdrant.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.timeout_secs == 0 {
            return Err("scan.batch_size and scan.timeout_secs must be positive".into());
        }
        if !self.max_points_per_sec.is_finite() || self.max_points_per_sec < 0.0 {
            return Err("scan.max_points_per_sec must be 0 (no limit) or positive".into());
        }
        if self.quarantine_suffix.is_empty() {
            return Err("scan.quarantine_suffix must not be empty".into());
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// What a collection scan writes besides its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mode {
    /// Write stamps into payloads.
    pub stamp: bool,
    /// Move flagged points to the quarantine collection.
    pub quarantine: bool,
}

impl Mode {
    pub const DRY_RUN: Mode = Mode {
        stamp: false,
        quarantine: false,
    };

    pub fn label(self) -> &'static str {
        match (self.stamp, self.quarantine) {
            (false, false) => "dry-run",
            (true, false) => "stamp",
            (false, true) => "quarantine",
            (true, true) => "stamp+quarantine",
        }
    }

    pub fn writes(self) -> bool {
        self.stamp || self.quarantine
    }
}

/// Why a scan stopped. Every variant's message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("invalid Qdrant URL {url:?}: {detail} (expected e.g. http://127.0.0.1:6334)")]
    InvalidUrl { url: String, detail: String },
    #[error(
        "cannot reach Qdrant at {url} over gRPC (port 6334 by default, not REST's 6333): {detail}"
    )]
    Unreachable { url: String, detail: String },
    #[error("collection {collection:?} does not exist on {url}")]
    MissingCollection { url: String, collection: String },
    #[error(
        "Qdrant at {url} refused the API key ({detail}); check --api-key / RAGWALL_SCAN_API_KEY"
    )]
    Unauthorized { url: String, detail: String },
    #[error("Qdrant {op} on {collection:?} failed: {detail}")]
    Qdrant {
        op: &'static str,
        collection: String,
        detail: String,
    },
    #[error("classification failed: {0}")]
    Firewall(#[from] FirewallError),
    #[error("the classifier thread failed: {0}")]
    Worker(String),
    #[error("--stamp needs the stamp key the proxy uses: set [proxy] stamp_key_file or {KEY_ENV}")]
    NoStampKey,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("checkpoint {path}: {detail}")]
    Checkpoint { path: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error("invalid [scan] configuration: {0}")]
    Config(String),
}

impl ScanError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        ScanError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Exit status of a finished scan: 0 complete, 2 when some points or records could not be
/// scanned, 130 when interrupted (the checkpoint lets a rerun continue).
pub fn exit_status(report: &Report) -> u8 {
    if !report.complete {
        130
    } else if report.tally.unscanned > 0 {
        2
    } else {
        0
    }
}

/// Builds the scanner the proxy would use, with the stamp key if one is configured.
pub fn scanner(cfg: &Config, fw: Arc<Firewall>) -> Result<Arc<Scanner>, ScanError> {
    cfg.scan.validate().map_err(ScanError::Config)?;
    let key = StampKey::load(cfg.proxy.stamp_key_file.as_deref())?;
    let s = Scanner::new(fw, &cfg.proxy, cfg.normalize.clone(), key).map_err(ScanError::Config)?;
    Ok(Arc::new(s))
}

/// A flag set by Ctrl-C or SIGTERM; scans check it between pages.
pub fn stop_on_signal(rt: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    rt.spawn(async move {
        crate::http::shutdown::shutdown_signal().await;
        eprintln!("ragwall scan: stopping after the current batch (run again to resume)");
        flag.store(true, Ordering::SeqCst);
    });
    stop
}

/// `ragwall scan qdrant|files`: runs the scan, prints the Markdown summary on standard output
/// and what went wrong on standard error, and returns the exit status ([`exit_status`]).
pub fn run(cfg: &Config, fw: Arc<Firewall>, args: crate::cli::ScanArgs) -> Result<u8, ScanError> {
    use crate::cli::ScanTarget;
    let scanner = scanner(cfg, fw)?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| ScanError::Worker(e.to_string()))?;
    let stop = stop_on_signal(&rt);
    let (report, written) = match args.target {
        ScanTarget::Qdrant(a) => {
            let job = QdrantJob {
                url: a.url,
                collection: a.collection,
                api_key: a.api_key.filter(|k| !k.is_empty()),
                mode: Mode {
                    stamp: a.stamp,
                    quarantine: a.quarantine,
                },
                out: Some(a.out.clone()),
                progress: true,
            };
            let report = rt.block_on(scan_collection(scanner, &cfg.scan, &job, &stop))?;
            (report, Some(a.out))
        }
        ScanTarget::Files(a) => {
            let job = FilesJob {
                paths: a.paths,
                out: a.out,
                quarantine: a.quarantine,
                report: a.report.clone(),
                progress: true,
            };
            let report = rt.block_on(async {
                tokio::task::block_in_place(|| scan_files(&scanner, &cfg.scan, &job, &stop))
            })?;
            (report, a.report)
        }
    };
    print!("{}", report.markdown());
    if let Some(out) = written {
        eprintln!(
            "ragwall scan: report written to {} and {}",
            out.display(),
            out.with_extension("md").display()
        );
    }
    if !report.complete {
        eprintln!("ragwall scan: interrupted; run the same command again to resume");
    }
    if report.tally.unscanned > 0 {
        eprintln!(
            "ragwall scan: {} point(s) could not be scanned (no text fields); they were neither \
             stamped nor moved (see the report's \"errors\")",
            report.tally.unscanned
        );
    }
    Ok(exit_status(&report))
}
