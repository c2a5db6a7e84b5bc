//! `ragwall guard`: JSONL chunks in, one JSON verdict per line out.
//!
//! Every non-empty input line produces exactly one output line, in input order, so a pipeline can
//! zip them. A line that cannot be scanned (invalid UTF-8, invalid JSON, missing `text`,
//! oversized, detector failure) gets an unscanned verdict with the policy's `on_error` action
//! and an `error` object: nothing is dropped and nothing passes silently.

use std::io::{BufRead, Write};

use serde::Serialize;

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
    pub fn at_least(&self, a: Action) -> usize {
        Action::ALL
            .iter()
            .filter(|&&x| x >= a)
            .map(|&x| self.by_action[x as usize])
            .sum()
    }
}

/// What went wrong with one input line.
#[derive(Debug, Clone, Serialize)]
pub struct LineError {
    pub kind: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Line<'a> {
    line: usize,
    #[serde(flatten)]
    verdict: &'a Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a LineError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wrapped: Option<&'a str>,
}

/// A line whose id could not even be read.
#[derive(Serialize)]
struct AnonymousLine<'a> {
    line: usize,
    id: Option<()>,
    #[serde(flatten)]
    verdict: &'a Verdict,
    error: &'a LineError,
}

enum Entry {
    Chunk(usize, Chunk),
    Bad(usize, Option<ChunkId>, LineError),
}

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
    let mut pending: Vec<Entry> = Vec::new();
    let mut chunks_pending = 0usize;
    let mut input = input;
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let entry = parse_line(line_no, &buf, opts.collection.as_deref());
        if matches!(entry, Entry::Chunk(..)) {
            chunks_pending += 1;
        }
        pending.push(entry);
        if chunks_pending >= opts.batch.max(1) {
            flush(
                fw,
                &mut pending,
                &mut out,
                opts,
                &nonce,
                &mut summary,
                &mut blocks,
            )?;
            chunks_pending = 0;
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

fn parse_line(line: usize, bytes: &[u8], collection: Option<&str>) -> Entry {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            return Entry::Bad(
                line,
                None,
                LineError {
                    kind: "invalid_utf8",
                    message: format!("line is not valid UTF-8: {e}"),
                },
            );
        }
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Entry::Bad(
                line,
                None,
                LineError {
                    kind: "invalid_json",
                    message: format!("line is not valid JSON: {e}"),
                },
            );
        }
    };
    let id = value
        .get("id")
        .and_then(|v| serde_json::from_value::<ChunkId>(v.clone()).ok());
    match serde_json::from_value::<Chunk>(value) {
        Ok(mut c) => {
            if c.collection.is_none() {
                c.collection = collection.map(str::to_owned);
            }
            Entry::Chunk(line, c)
        }
        Err(e) => Entry::Bad(
            line,
            id,
            LineError {
                kind: "invalid_chunk",
                message: format!("line is not a chunk ({{\"id\":…,\"text\":…}}): {e}"),
            },
        ),
    }
}

fn flush(
    fw: &Firewall,
    pending: &mut Vec<Entry>,
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
        .filter_map(|e| match e {
            Entry::Chunk(_, c) => Some(c.clone()),
            Entry::Bad(..) => None,
        })
        .collect();
    let (verdicts, batch_error) = match fw.inspect(&chunks) {
        Ok(v) => (v, None),
        Err(e) => {
            tracing::error!(error = %e, chunks = chunks.len(), "batch could not be scanned");
            let kind = match e {
                FirewallError::TooManyChunks { .. } => "too_many_chunks",
                FirewallError::Detector(crate::detect::DetectError::Overloaded(_)) => "overloaded",
                FirewallError::Detector(_) => "detector_failed",
            };
            let err = LineError {
                kind,
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
                        &format!("error.{kind}"),
                        err.message.clone(),
                    )
                })
                .collect();
            (v, Some(err))
        }
    };
    let wrapped = opts.wrap.map(|mode| fw.wrap(&verdicts, Some(mode), nonce));
    let mut passing_blocks = wrapped.as_ref().map(|w| w.blocks.iter());
    let mut verdicts = verdicts.iter();
    for entry in pending.drain(..) {
        match entry {
            Entry::Chunk(line, _) => {
                let Some(v) = verdicts.next() else { break };
                let block = if v.scanned && v.action.passes() {
                    passing_blocks.as_mut().and_then(|b| b.next())
                } else {
                    None
                };
                if let Some(b) = block {
                    blocks.push(b.clone());
                }
                count(summary, v);
                let l = Line {
                    line,
                    verdict: v,
                    error: batch_error.as_ref(),
                    wrapped: block.map(String::as_str),
                };
                serde_json::to_writer(&mut *out, &l)?;
                out.write_all(b"\n")?;
            }
            Entry::Bad(line, id, err) => {
                let v = fw.unscanned(
                    id.as_ref().unwrap_or(&ChunkId::Str(String::new())),
                    opts.collection.as_deref(),
                    None,
                    None,
                    &format!("error.{}", err.kind),
                    err.message.clone(),
                );
                count(summary, &v);
                if id.is_some() {
                    serde_json::to_writer(
                        &mut *out,
                        &Line {
                            line,
                            verdict: &v,
                            error: Some(&err),
                            wrapped: None,
                        },
                    )?;
                } else {
                    let mut value = serde_json::to_value(AnonymousLine {
                        line,
                        id: None,
                        verdict: &v,
                        error: &err,
                    })?;
                    value["id"] = serde_json::Value::Null;
                    serde_json::to_writer(&mut *out, &value)?;
                }
                out.write_all(b"\n")?;
            }
        }
    }
    Ok(())
}

fn count(summary: &mut GuardSummary, v: &Verdict) {
    summary.chunks += 1;
    summary.by_action[v.action as usize] += 1;
    if !v.scanned {
        summary.unscanned += 1;
    }
}
