//! The audit log: every non-allow (or unscanned) decision, one JSON line each, hash-chained.
//!
//! Line format (keys in this order, one object per line, `\n`-terminated):
//!
//! ```json
//! {"seq":12,"time":"2026-11-25T12:00:00.123456Z","request_id":"…","route":"/v1/guard",
//!  "collection":"docs","chunk_id":"kb-7","chunk_sha256":"<64 hex>","model_sha256":"<64 hex>",
//!  "detector":"onnx:…+rules:…","policy_version":"default-1","action":"quarantine",
//!  "scanned":true,"score":0.973,"reasons":["score","rule.ignore_previous"],"prev":"<64 hex>"}
//! ```
//!
//! - `seq` counts from 1 over the file's whole life; `prev` is the lower-case hex SHA-256 of the
//!   previous line's exact bytes (without its newline), 64 zeros on the first line. Editing,
//!   inserting, deleting or reordering any line breaks the chain at the next line, which
//!   [`verify`] (`ragwall audit verify FILE`) reports with its line number.
//! - The chain cannot protect the *last* line or detect truncation of the tail by itself: anchor
//!   the head hash (printed by `verify`, logged at shutdown) somewhere the writer cannot change.
//! - No chunk text is written: the chunk is identified by id and SHA-256, and reasons by their
//!   stable codes (their human details may quote the text).
//!
//! On start the log is opened for append and the chain continues from its last line. A last line
//! without a newline (a torn write, e.g. power lost mid-write) or that is not an audit record is
//! never appended to and never altered: the file is renamed, byte for byte intact, to
//! `<path>.torn-<unix seconds>` (the new segment's name and the reason are logged and returned by
//! [`AuditLog::opened`]), and a new segment starts at `<path>` from [`GENESIS`]. The service keeps
//! its audit trail instead of refusing to start; the operator inspects the kept file.
//!
//! [`AuditLog::close`] ends the log: the head it returns is final, later writes fail (and the
//! requests that needed them fail closed).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chunk::{ChunkId, Verdict};
use crate::policy::Action;

/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub request_id: String,
    pub route: String,
    pub collection: Option<String>,
    pub chunk_id: ChunkId,
    pub chunk_sha256: String,
    /// SHA-256 of the classifier's `model.onnx`; `null` when running rules only.
    pub model_sha256: Option<String>,
    pub detector: String,
    pub policy_version: String,
    pub action: Action,
    pub scanned: bool,
    pub score: f32,
    pub reasons: Vec<String>,
    pub prev: String,
}

/// Why the log cannot be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("audit log lock poisoned")]
    Poisoned,
    #[error("audit log {0} is closed (the service is stopping)")]
    Closed(PathBuf),
}

/// Whether a verdict is written to the audit log.
pub fn is_audited(v: &Verdict) -> bool {
    v.action != Action::Allow || !v.scanned
}

struct Chain {
    file: Option<File>,
    prev: String,
    seq: u64,
}

/// An open audit log. Writes are serialized; call it from a blocking thread.
pub struct AuditLog {
    path: PathBuf,
    fsync: bool,
    chain: Mutex<Chain>,
    kept: Option<PathBuf>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .finish()
    }
}

/// Context shared by every line of one request.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub model_sha256: Option<&'a str>,
}

impl AuditLog {
    /// Opens (or creates) the log and continues its chain; a damaged tail starts a new segment
    /// (see the module documentation).
    pub fn open(path: &Path, fsync: bool) -> Result<Self, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(path)
        };
        let mut file = open().map_err(io)?;
        let tail = last_line(&mut file).map_err(io)?;
        let chained = match &tail {
            None => Some((GENESIS.to_owned(), 0)),
            Some(line) => serde_json::from_slice::<AuditRecord>(line)
                .ok()
                .map(|rec| (hex::encode(Sha256::digest(line)), rec.seq)),
        };
        let (prev, seq, kept) = match chained {
            Some((prev, seq)) => (prev, seq, None),
            None => {
                drop(file);
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let mut kept = PathBuf::from(format!("{}.torn-{secs}", path.display()));
                let mut n = 1;
                while kept.exists() {
                    kept = PathBuf::from(format!("{}.torn-{secs}-{n}", path.display()));
                    n += 1;
                }
                std::fs::rename(path, &kept).map_err(io)?;
                tracing::error!(
                    path = %path.display(),
                    kept = %kept.display(),
                    "audit log: the last line is incomplete or not an audit record; the file was \
                     kept unchanged under a new name and a new segment starts (inspect it with \
                     ragwall audit verify)"
                );
                file = open().map_err(io)?;
                (GENESIS.to_owned(), 0, Some(kept))
            }
        };
        Ok(AuditLog {
            path: path.to_owned(),
            fsync,
            chain: Mutex::new(Chain {
                file: Some(file),
                prev,
                seq,
            }),
            kept,
        })
    }

    /// Where a damaged earlier segment was kept, if opening found one.
    pub fn opened(&self) -> Option<&Path> {
        self.kept.as_deref()
    }

    /// Ends the log and returns its final head: nothing is written after it.
    pub fn close(&self) -> Result<String, AuditError> {
        let mut chain = self.chain.lock().map_err(|_| AuditError::Poisoned)?;
        if let Some(file) = chain.file.take()
            && self.fsync
        {
            file.sync_all().map_err(|source| AuditError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(chain.prev.clone())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the last line written (the value to anchor elsewhere).
    pub fn head(&self) -> Result<String, AuditError> {
        Ok(self
            .chain
            .lock()
            .map_err(|_| AuditError::Poisoned)?
            .prev
            .clone())
    }

    /// Appends a line for every audited verdict, in order, as one write. Returns the number of
    /// lines written.
    pub fn record(&self, entry: Entry<'_>, verdicts: &[Verdict]) -> Result<usize, AuditError> {
        let audited: Vec<&Verdict> = verdicts.iter().filter(|v| is_audited(v)).collect();
        if audited.is_empty() {
            return Ok(0);
        }
        let time = now_rfc3339();
        let mut chain = self.chain.lock().map_err(|_| AuditError::Poisoned)?;
        let (mut prev, mut seq) = (chain.prev.clone(), chain.seq);
        let mut out = Vec::with_capacity(audited.len() * 512);
        for v in &audited {
            seq += 1;
            let rec = AuditRecord {
                seq,
                time: time.clone(),
                request_id: entry.request_id.to_owned(),
                route: entry.route.to_owned(),
                collection: v.collection.clone(),
                chunk_id: v.id.clone(),
                chunk_sha256: v.sha256.clone(),
                model_sha256: entry.model_sha256.map(str::to_owned),
                detector: v.detector.clone(),
                policy_version: v.policy_version.clone(),
                action: v.action,
                scanned: v.scanned,
                score: v.score,
                reasons: v.reasons.iter().map(|r| r.code.clone()).collect(),
                prev: std::mem::take(&mut prev),
            };
            let line = serde_json::to_vec(&rec).map_err(|e| AuditError::Io {
                path: self.path.clone(),
                source: e.into(),
            })?;
            prev = hex::encode(Sha256::digest(&line));
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        let io = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        let file = chain
            .file
            .as_mut()
            .ok_or_else(|| AuditError::Closed(self.path.clone()))?;
        file.write_all(&out).map_err(io)?;
        if self.fsync {
            file.sync_data().map_err(io)?;
        }
        // The chain advances only once the bytes are written.
        chain.prev = prev;
        chain.seq = seq;
        Ok(audited.len())
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The last line of a file, without its newline; `None` for an empty file. A file that does not
/// end in `\n` (a torn write) yields bytes that never parse as a record.
fn last_line(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok(None);
    }
    let mut end_byte = [0u8];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut end_byte)?;
    if end_byte[0] != b'\n' {
        // Torn write: report it as a tail that does not parse.
        return Ok(Some(b"\0torn".to_vec()));
    }
    // Read backwards in blocks until the newline before the last line.
    let body_end = len - 1;
    let mut start = body_end;
    let mut tail: Vec<u8> = Vec::new();
    const BLOCK: u64 = 64 * 1024;
    while start > 0 {
        let from = start.saturating_sub(BLOCK);
        let mut buf = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut buf)?;
        buf.extend_from_slice(&tail);
        tail = buf;
        start = from;
        let scanned_upto = (body_end - start) as usize;
        if let Some(i) = tail[..scanned_upto].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(tail[i + 1..scanned_upto].to_vec()));
        }
    }
    Ok(Some(tail[..(body_end as usize)].to_vec()))
}

/// Result of a successful [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub lines: u64,
    /// SHA-256 of the last line ([`GENESIS`] for an empty log).
    pub head: String,
}

/// Where and why a log does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    Broken { line: u64, reason: String },
}

/// Checks every line: a valid record, `seq` one more than the line before, `prev` the hash of
/// the line before, and a final newline.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let io = |source| VerifyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut prev = GENESIS.to_owned();
    let mut n = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
            break;
        }
        n += 1;
        let broken = |reason: String| VerifyError::Broken { line: n, reason };
        let Some(line) = buf.strip_suffix(b"\n") else {
            return Err(broken("the last line is incomplete (no newline)".into()));
        };
        let rec: AuditRecord = serde_json::from_slice(line)
            .map_err(|e| broken(format!("not an audit record: {e}")))?;
        if rec.seq != n {
            return Err(broken(format!("seq is {}, expected {n}", rec.seq)));
        }
        if rec.prev != prev {
            return Err(broken(
                "prev does not match the hash of the line before: a line was changed, \
                 inserted, removed or reordered"
                    .into(),
            ));
        }
        prev = hex::encode(Sha256::digest(line));
    }
    Ok(VerifyReport {
        lines: n,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Reason;

    fn verdict(id: u64, action: Action, scanned: bool) -> Verdict {
        Verdict {
            id: id.into(),
            action,
            score: 0.9,
            reasons: vec![Reason {
                code: "score".into(),
                action,
                detail: "secret text".into(),
            }],
            findings: vec![],
            sha256: "ab".repeat(32),
            collection: Some("docs".into()),
            source: None,
            scanned,
            policy_version: "p1".into(),
            detector: "d".into(),
            sanitized: None,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ragwall-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir.join("audit.jsonl")
    }

    const ENTRY: Entry<'static> = Entry {
        request_id: "r1",
        route: "/v1/scan",
        model_sha256: Some("m"),
    };

    #[test]
    fn chain_survives_reopen_and_detects_tampering() {
        let path = temp("chain");
        let log = AuditLog::open(&path, false).expect("open");
        let n = log
            .record(
                ENTRY,
                &[
                    verdict(1, Action::Quarantine, true),
                    verdict(2, Action::Allow, true),
                    verdict(3, Action::Allow, false),
                ],
            )
            .expect("write");
        assert_eq!(n, 2, "allow+scanned is not audited; unscanned always is");
        drop(log);
        let log = AuditLog::open(&path, false).expect("reopen");
        log.record(ENTRY, &[verdict(4, Action::Block, true)])
            .expect("write");
        let report = verify(&path).expect("verifies");
        assert_eq!(report.lines, 3);
        assert_eq!(report.head, log.head().expect("head"));
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("secret text"), "no reason details: {text}");

        // Change a score on line 2: line 3's prev no longer matches.
        let tampered = text.replacen("\"score\":0.9", "\"score\":0.1", 2);
        std::fs::write(&path, &tampered).expect("write");
        match verify(&path) {
            Err(VerifyError::Broken { line: 2, .. }) => {}
            other => panic!("expected line 2 broken, got {other:?}"),
        }
        // Delete line 1: seq and prev break on the new first line.
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[1], lines[2])).expect("write");
        assert!(matches!(
            verify(&path),
            Err(VerifyError::Broken { line: 1, .. })
        ));
        // Torn last line: verify fails; the writer keeps the file unchanged under a new name
        // and starts a new segment.
        let torn = format!("{}\n{}", lines[0], &lines[1][..10]);
        std::fs::write(&path, &torn).expect("write");
        assert!(matches!(
            verify(&path),
            Err(VerifyError::Broken { line: 2, .. })
        ));
        let log = AuditLog::open(&path, false).expect("a torn tail starts a new segment");
        let kept = log
            .opened()
            .expect("the damaged segment is reported")
            .to_owned();
        assert_eq!(std::fs::read_to_string(&kept).expect("kept"), torn);
        assert_eq!(log.head().expect("head"), GENESIS);
        log.record(ENTRY, &[verdict(5, Action::Tag, true)])
            .expect("write");
        assert_eq!(verify(&path).expect("new segment verifies").lines, 1);
        // After close the head is final: writes fail.
        let head = log.close().expect("close");
        assert_eq!(head, verify(&path).expect("ok").head);
        assert!(matches!(
            log.record(ENTRY, &[verdict(6, Action::Tag, true)]),
            Err(AuditError::Closed(_))
        ));
        std::fs::remove_file(kept).ok();
    }

    #[test]
    fn long_last_line_is_found() {
        let path = temp("long");
        let log = AuditLog::open(&path, false).expect("open");
        let mut v = verdict(1, Action::Block, true);
        v.id = ChunkId::Str("x".repeat(200_000));
        log.record(ENTRY, &[verdict(0, Action::Tag, true), v])
            .expect("write");
        let head = log.head().expect("head");
        drop(log);
        let log = AuditLog::open(&path, false).expect("reopen");
        assert_eq!(log.head().expect("head"), head);
        log.record(ENTRY, &[verdict(2, Action::Tag, true)])
            .expect("write");
        assert_eq!(verify(&path).expect("ok").lines, 3);
    }
}
