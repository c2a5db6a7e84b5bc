//! `ragwall classify`: the classifier alone (after normalization), one score per input line.
//! For looking at what the model thinks, separately from rules and policy.

use std::io::{BufRead, Write};

use serde_json::json;

use super::jsonl::{self, Line};
use crate::chunk::Chunk;
use crate::classifier::Classifier;
use crate::normalize::{NormalizeOptions, normalize};

/// Scores every chunk of `input`; returns the number of lines that could not be scored.
pub fn run(
    classifier: &Classifier,
    norm: &NormalizeOptions,
    input: impl BufRead,
    mut out: impl Write,
    batch: usize,
) -> std::io::Result<usize> {
    let mut failed = 0;
    let mut pending: Vec<Line<Chunk>> = Vec::new();
    let mut lines = jsonl::lines::<Chunk>(input, "a chunk ({\"id\":…,\"text\":…})").peekable();
    while lines.peek().is_some() {
        pending.clear();
        for line in lines.by_ref().take(batch.max(1)) {
            pending.push(line?);
        }
        let norms: Vec<_> = pending
            .iter()
            .map(|l| l.record.as_ref().ok().map(|c| normalize(&c.text, norm)))
            .collect();
        // Visible text first, then every hidden text, of every chunk: one call, one batch.
        let mut texts: Vec<&str> = Vec::new();
        let mut owner: Vec<(usize, bool)> = Vec::new();
        for (i, n) in norms.iter().enumerate() {
            if let Some(n) = n {
                texts.push(&n.text);
                owner.push((i, false));
                for h in &n.hidden {
                    texts.push(&h.text);
                    owner.push((i, true));
                }
            }
        }
        let scores = classifier.score(&texts);
        for (i, line) in pending.iter().enumerate() {
            let id = line.id.clone().unwrap_or(serde_json::Value::Null);
            let record = match (&line.record, &scores, &norms[i]) {
                (Err(e), _, _) => {
                    failed += 1;
                    json!({"line": line.number, "id": id, "error": e})
                }
                (Ok(_), Err(e), _) => {
                    failed += 1;
                    json!({"line": line.number, "id": id, "error": {"kind": "classifier_failed", "message": e.to_string()}})
                }
                (Ok(c), Ok(scores), Some(n)) => {
                    let mine = owner.iter().zip(scores).filter(|((o, _), _)| *o == i);
                    let visible = mine.clone().find(|((_, h), _)| !h).map(|(_, s)| *s);
                    let hidden = mine
                        .filter(|((_, h), _)| *h)
                        .map(|(_, s)| s.0)
                        .reduce(f32::max);
                    let (vs, (ws, we)) = visible.unwrap_or((f32::NAN, (0, 0)));
                    let span = n.original_span(ws, we);
                    json!({
                        "line": line.number,
                        "id": id,
                        "score": hidden.map_or(vs, |h| h.max(vs)),
                        "visible_score": vs,
                        "hidden_score": hidden,
                        "window": {"start": span.start, "end": span.end},
                        "sha256": crate::firewall::sha256_hex(&c.text),
                        "model": crate::detect::Detector::id(classifier),
                    })
                }
                (Ok(_), Ok(_), None) => unreachable_record(line.number),
            };
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(failed)
}

fn unreachable_record(line: usize) -> serde_json::Value {
    json!({"line": line, "error": {"kind": "internal", "message": "chunk was not normalized"}})
}
