//! `ragwall guard`: JSONL chunks in, one JSON verdict per line out.
//!
//! Every non-blank input line produces exactly one output line, in input order, so a pipeline
//! can zip them. A line that cannot be scanned (invalid UTF-8, invalid JSON, missing `text`,
//! oversized, detector failure) gets an unscanned verdict with the policy's `on_error` action
//! and an `error` object: nothing is dropped and nothing passes silently.

use std::io::{BufRead, Write};

use serde_json::{Map, Value};

use super::jsonl::{self, Line, LineError};
use crate::chunk::{Chunk, ChunkId, Verdict};
use crate::firewall::{Firewall, FirewallError};
use crate::policy::Action;
use crate::wrap::{WrapMode, new_nonce};

/// Options of one guard run.
#[derive(Debug, Clone)]
pub struct GuardOptions {
    pub wrap: Option<WrapMode>,
    pub collection: Option<String>,
    pub batch: usize,
}

/// Counts for the exit status and the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GuardSummary {
    pub chunks: usize,
    pub unscanned: usize,
    pub by_action: [usize; 4],
}

impl GuardSummary {
    /// Chunks whose action is `a` or stricter.
    pub fn at_least(&self, a: Action) -> usize {
        Action::ALL
            .iter()
            .filter(|&&x| x >= a)
            .map(|&x| self.by_action[x as usize])
            .sum()
    }

    fn count(&mut self, v: &Verdict) {
        self.chunks += 1;
        self.by_action[v.action as usize] += 1;
        if !v.scanned {
            self.unscanned += 1;
        }
    }
}

const WHAT: &str = "a chunk ({\"id\":…,\"text\":…})";

/// Runs the guard over `input`, writing to `out`.
pub fn run(
    fw: &Firewall,
    input: impl BufRead,
    mut out: impl Write,
    opts: &GuardOptions,
) -> std::io::Result<GuardSummary> {
    let nonce = new_nonce();
    let mut summary = GuardSummary::default();
    let mut blocks: Vec<String> = Vec::new();
    let mut pending: Vec<Line<Chunk>> = Vec::new();
    let mut ready = 0usize;
    for line in jsonl::lines::<Chunk>(input, WHAT) {
        let mut line = line?;
        if let Ok(c) = &mut line.record {
            if c.collection.is_none() {
                c.collection.clone_from(&opts.collection);
            }
            ready += 1;
        }
        pending.push(line);
        if ready >= opts.batch.max(1) {
            flush(
                fw,
                &mut pending,
                &mut out,
                opts,
                &nonce,
                &mut summary,
                &mut blocks,
            )?;
            ready = 0;
        }
    }
    flush(
        fw,
        &mut pending,
        &mut out,
        opts,
        &nonce,
        &mut summary,
        &mut blocks,
    )?;
    if let Some(mode) = opts.wrap {
        // The trailer carries what the prompt builder needs for the whole run.
        let w = fw.wrap(&[], Some(mode), &nonce);
        let trailer = serde_json::json!({
            "context": blocks.join("\n\n"),
            "system_instruction": w.system_instruction,
            "mode": mode,
            "nonce": nonce,
            "chunks": blocks.len(),
        });
        writeln!(out, "{trailer}")?;
    }
    out.flush()?;
    Ok(summary)
}

/// Inspects the pending chunks as one batch and writes every pending line's verdict.
fn flush(
    fw: &Firewall,
    pending: &mut Vec<Line<Chunk>>,
    out: &mut impl Write,
    opts: &GuardOptions,
    nonce: &str,
    summary: &mut GuardSummary,
    blocks: &mut Vec<String>,
) -> std::io::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let chunks: Vec<Chunk> = pending
        .iter()
        .filter_map(|l| l.record.as_ref().ok().cloned())
        .collect();
    let (verdicts, batch_error) = match fw.inspect(&chunks) {
        Ok(v) => (v, None),
        Err(e) => {
            tracing::error!(error = %e, chunks = chunks.len(), "batch could not be scanned");
            let err = LineError {
                kind: error_kind(&e),
                message: e.to_string(),
            };
            let v = chunks
                .iter()
                .map(|c| {
                    fw.unscanned(
                        &c.id,
                        c.collection.as_deref(),
                        c.source.as_deref(),
                        Some(&c.text),
                        &format!("error.{}", err.kind),
                        err.message.clone(),
                    )
                })
                .collect();
            (v, Some(err))
        }
    };
    let wrapped = opts.wrap.map(|mode| fw.wrap(&verdicts, Some(mode), nonce));
    let mut passing = wrapped.iter().flat_map(|w| w.blocks.iter());
    let mut verdicts = verdicts.into_iter();
    for line in pending.drain(..) {
        let (verdict, error, block) = match line.record {
            Ok(_) => {
                let Some(v) = verdicts.next() else { break };
                let block = (v.scanned && v.action.passes())
                    .then(|| passing.next())
                    .flatten();
                (v, batch_error.clone(), block)
            }
            Err(err) => {
                let id = line
                    .id
                    .clone()
                    .and_then(|v| serde_json::from_value::<ChunkId>(v).ok())
                    .unwrap_or(ChunkId::Str(String::new()));
                let v = fw.unscanned(
                    &id,
                    opts.collection.as_deref(),
                    None,
                    None,
                    &format!("error.{}", err.kind),
                    err.message.clone(),
                );
                (v, Some(err), None)
            }
        };
        summary.count(&verdict);
        if let Some(b) = block {
            blocks.push(b.clone());
        }
        let record = render(
            line.number,
            line.id.as_ref(),
            &verdict,
            error.as_ref(),
            block.map(String::as_str),
        )?;
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// One output line: `line`, the input's `id` verbatim (null if unreadable), the verdict, and
/// `error` / `wrapped` when present.
pub fn render(
    number: usize,
    raw_id: Option<&Value>,
    verdict: &Verdict,
    error: Option<&LineError>,
    wrapped: Option<&str>,
) -> serde_json::Result<Value> {
    let mut m = Map::new();
    m.insert("line".into(), number.into());
    m.insert("id".into(), raw_id.cloned().unwrap_or(Value::Null));
    if let Value::Object(v) = serde_json::to_value(verdict)? {
        m.extend(v.into_iter().filter(|(k, _)| k != "id"));
    }
    if let Some(e) = error {
        m.insert("error".into(), serde_json::to_value(e)?);
    }
    if let Some(w) = wrapped {
        m.insert("wrapped".into(), w.into());
    }
    Ok(Value::Object(m))
}

/// Stable error kind of a failed batch.
pub fn error_kind(e: &FirewallError) -> &'static str {
    match e {
        FirewallError::TooManyChunks { .. } => "too_many_chunks",
        FirewallError::Detector(crate::detect::DetectError::Overloaded(_)) => "overloaded",
        FirewallError::Detector(_) => "detector_failed",
        FirewallError::Deadline(_) => "deadline_exceeded",
    }
}
