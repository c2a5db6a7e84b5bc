//! `ragwall scan files`: the ingestion gate for documents before they are embedded.
//!
//! Inputs are JSONL (one JSON object per line, judged like a Qdrant payload: its text fields
//! per `[proxy] text_fields`), plain text and Markdown (one record per file, its whole text);
//! directories are walked for `.jsonl`, `.txt`, `.md` and `.markdown` files. Everything is read
//! and checked first (UTF-8, JSON objects), so a bad file stops the run before any output
//! exists. Passing records (allow, tag) go to the clean output verbatim (text files as
//! `{"id", "text", "source"}`); the rest, and records without text fields (fail closed), go to
//! the quarantine output with their verdict. Both outputs appear, complete, only at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::chunk::ChunkId;
use crate::proxy::scan::Scanner;
use crate::scan::atomic::AtomicFile;
use crate::scan::collection::write_report;
use crate::scan::progress::Progress;
use crate::scan::report::{BatchTime, Outcome, Report, Source, Tally};
use crate::scan::{ScanConfig, ScanError};

/// Problems listed before giving up on bad input.
const MAX_PROBLEMS: usize = 10;

/// One files scan.
#[derive(Debug, Clone)]
pub struct FilesJob {
    pub paths: Vec<PathBuf>,
    /// Clean records (JSONL).
    pub out: PathBuf,
    /// Flagged and unscannable records with their verdicts (JSONL).
    pub quarantine: PathBuf,
    /// Report (JSON, Markdown beside it); `None`: none written.
    pub report: Option<PathBuf>,
    pub progress: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Jsonl,
    Text,
}

fn kind(path: &Path) -> Option<Kind> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "jsonl" | "ndjson" => Some(Kind::Jsonl),
        "txt" | "md" | "markdown" => Some(Kind::Text),
        _ => None,
    }
}

/// One input record.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    file: String,
    line: Option<usize>,
    id: Value,
    /// What the scanner reads.
    payload: Map<String, Value>,
    /// What the clean output gets.
    output: Value,
}

/// Expands directories (sorted, recursive) and checks file types.
fn expand(paths: &[PathBuf], problems: &mut Vec<String>) -> Vec<(PathBuf, Kind)> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            let mut children: Vec<PathBuf> = match std::fs::read_dir(&p) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => {
                    problems.push(format!("{}: {e}", p.display()));
                    continue;
                }
            };
            children.sort();
            children.retain(|c| c.is_dir() || kind(c).is_some());
            stack.extend(children.into_iter().rev());
        } else if let Some(k) = kind(&p) {
            out.push((p, k));
        } else {
            problems.push(format!(
                "{}: unsupported file type (expected .jsonl, .txt, .md or .markdown)",
                p.display()
            ));
        }
    }
    out
}

/// Where invalid UTF-8 starts, as a 1-based line number and byte offset.
fn utf8_error(bytes: &[u8], e: &std::str::Utf8Error) -> String {
    let at = e.valid_up_to();
    let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    format!("not valid UTF-8 (line {line}, byte offset {at})")
}

/// Reads and checks every input; any problem fails the whole run.
fn load(paths: &[PathBuf]) -> Result<Vec<Record>, ScanError> {
    let mut problems = Vec::new();
    let mut records = Vec::new();
    for (path, k) in expand(paths, &mut problems) {
        let name = path.display().to_string();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                problems.push(format!("{name}: {e}"));
                continue;
            }
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{name}: {}", utf8_error(&bytes, &e)));
                continue;
            }
        };
        match k {
            Kind::Text => {
                let mut payload = Map::new();
                payload.insert("text".into(), Value::from(text));
                records.push(Record {
                    file: name.clone(),
                    line: None,
                    id: Value::from(name.clone()),
                    output: json!({"id": name, "text": text, "source": name}),
                    payload,
                });
            }
            Kind::Jsonl => {
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Value>(line) {
                        Ok(Value::Object(obj)) => {
                            let id = obj
                                .get("id")
                                .cloned()
                                .unwrap_or_else(|| Value::from(format!("{name}:{}", i + 1)));
                            let mut payload = obj.clone();
                            payload.shift_remove("id");
                            records.push(Record {
                                file: name.clone(),
                                line: Some(i + 1),
                                id,
                                payload,
                                output: Value::Object(obj),
                            });
                        }
                        Ok(_) => problems.push(format!("{name}:{}: not a JSON object", i + 1)),
                        Err(e) => problems.push(format!("{name}:{}: not valid JSON: {e}", i + 1)),
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(records);
    }
    let n = problems.len();
    problems.truncate(MAX_PROBLEMS);
    let more = if n > MAX_PROBLEMS {
        format!("\n  … and {} more", n - MAX_PROBLEMS)
    } else {
        String::new()
    };
    Err(ScanError::Input(format!(
        "{n} input problem(s); nothing was written:\n  {}{more}",
        problems.join("\n  ")
    )))
}

fn chunk_id(v: &Value) -> ChunkId {
    serde_json::from_value(v.clone()).unwrap_or_else(|_| ChunkId::Str(v.to_string()))
}

fn line(out: &mut AtomicFile, v: &Value, path: &Path) -> Result<(), ScanError> {
    let w = out.writer();
    serde_json::to_writer(&mut *w, v)
        .map_err(std::io::Error::from)
        .and_then(|()| w.write_all(b"\n"))
        .map_err(|e| ScanError::io(path, e))
}

/// Scans the files of `job`. Synchronous and CPU-bound. Returns the report (also written to
/// `job.report`); when `stop` is set the run ends without any output and `complete = false`.
pub fn scan_files(
    scanner: &Scanner,
    cfg: &ScanConfig,
    job: &FilesJob,
    stop: &AtomicBool,
) -> Result<Report, ScanError> {
    cfg.validate().map_err(ScanError::Config)?;
    let records = load(&job.paths)?;
    let mut clean = AtomicFile::create(&job.out).map_err(|e| ScanError::io(&job.out, e))?;
    let mut flagged =
        AtomicFile::create(&job.quarantine).map_err(|e| ScanError::io(&job.quarantine, e))?;
    let mut tally = Tally::default();
    let mut progress = if job.progress {
        Progress::new("files", Some(records.len() as u64), 0)
    } else {
        Progress::hidden()
    };
    let mut complete = true;
    for batch in records.chunks(cfg.batch_size as usize) {
        if stop.load(Ordering::SeqCst) {
            complete = false;
            break;
        }
        let started = Instant::now();
        let refs: Vec<_> = batch
            .iter()
            .map(|r| (chunk_id(&r.id), &r.payload))
            .collect();
        // Input files are client data: a stamp in them is never taken at its word.
        let decisions = scanner.decide(None, &refs, false)?;
        let classify = started.elapsed();
        for (r, d) in batch.iter().zip(&decisions) {
            let verdict = |action: &str, score: f32, reasons: &[String]| {
                json!({"source": r.file, "line": r.line, "id": r.id, "action": action,
                       "score": score, "reasons": reasons, "record": r.output})
            };
            if d.fields.is_empty() {
                tally.error(
                    &r.id,
                    "no_text_fields",
                    "the record has no text fields".into(),
                );
                let v = verdict("unscanned", 1.0, &["error.no_text_fields".to_owned()]);
                line(&mut flagged, &v, &job.quarantine)?;
                continue;
            }
            tally.record(&Outcome {
                id: &r.id,
                action: d.action,
                score: d.score,
                reasons: &d.reasons,
                trusted_stamp: false,
                chunks: d.fields.len(),
            });
            if d.action.passes() {
                line(&mut clean, &r.output, &job.out)?;
            } else {
                tally.moved += 1;
                let v = verdict(d.action.as_str(), d.score, &d.reasons);
                line(&mut flagged, &v, &job.quarantine)?;
            }
        }
        tally.batch(BatchTime {
            batch: 0,
            first_id: batch.first().map(|r| r.id.clone()).unwrap_or_default(),
            points: batch.len(),
            seconds: started.elapsed().as_secs_f64(),
            classify_seconds: classify.as_secs_f64(),
        });
        progress.advance(batch.len() as u64);
    }
    progress.finish(if complete { "done" } else { "interrupted" });
    let fw = scanner.firewall();
    let report = Report::new(
        Source::Files {
            paths: job.paths.iter().map(|p| p.display().to_string()).collect(),
        },
        "files",
        complete,
        fw.detector_id(),
        &fw.policy().version,
        tally,
    );
    if complete {
        clean.commit().map_err(|e| ScanError::io(&job.out, e))?;
        flagged
            .commit()
            .map_err(|e| ScanError::io(&job.quarantine, e))?;
    }
    if let Some(out) = &job.report {
        write_report(out, &report)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_input_is_named_before_anything_is_read_twice() {
        let dir = tempfile::tempdir().expect("tmp");
        let good = dir.path().join("a.jsonl");
        std::fs::write(
            &good,
            "{\"id\":1,\"text\":\"fine\"}\n\n{\"text\":\"no id\"}\n",
        )
        .expect("w");
        let bad_utf8 = dir.path().join("b.md");
        std::fs::write(&bad_utf8, b"ok\nstill ok\n\xff\xfe").expect("w");
        let bad_json = dir.path().join("c.jsonl");
        std::fs::write(&bad_json, "{\"text\":1}\n[1]\n{oops\n").expect("w");
        let other = dir.path().join("d.pdf");
        std::fs::write(&other, "x").expect("w");

        let recs = load(std::slice::from_ref(&good)).expect("good loads");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].id, json!(1));
        assert!(
            !recs[0].payload.contains_key("id"),
            "the id is not text to judge"
        );
        assert_eq!(recs[1].id, json!(format!("{}:3", good.display())));

        let err = load(&[good, bad_utf8, bad_json, other])
            .expect_err("bad")
            .to_string();
        assert!(
            err.contains("b.md: not valid UTF-8 (line 3, byte offset 12)"),
            "{err}"
        );
        assert!(err.contains("c.jsonl:2: not a JSON object"), "{err}");
        assert!(err.contains("c.jsonl:3: not valid JSON"), "{err}");
        assert!(err.contains("d.pdf: unsupported file type"), "{err}");
        assert!(err.contains("nothing was written"));
    }

    #[test]
    fn directories_are_walked_in_order() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        for f in ["b.txt", "a.md", "sub/c.markdown", "skip.bin"] {
            std::fs::write(dir.path().join(f), "text").expect("w");
        }
        let recs = load(&[dir.path().to_owned()]).expect("loads");
        let names: Vec<String> = recs
            .iter()
            .map(|r| r.file.rsplit('/').next().unwrap_or("").to_owned())
            .collect();
        assert_eq!(names, ["a.md", "b.txt", "c.markdown"]);
    }
}
