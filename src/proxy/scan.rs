//! One decision per point: from a trusted stamp when it has one, else from the firewall.
//!
//! Each text field of a point is one [`Chunk`] (source = the field's path), so a verdict's spans
//! and the wrapped text are per field; the point's action is the strictest of its fields', its
//! score the highest, its reasons the union. A field longer than `[limits] max_chunk_bytes` is
//! scanned in overlapping pieces; a point's fields are scanned up to `[proxy]
//! max_point_text_bytes` in all, and a point with more text gets `on_error` (reason
//! `limit.point_text_bytes`) — that point, not the whole response. Synchronous and CPU-bound: callers run it on a
//! blocking thread.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::chunk::{Chunk, ChunkId};
use crate::firewall::{Firewall, FirewallError};
use crate::normalize::{NormalizeOptions, normalize};
use crate::policy::Action;
use crate::proxy::config::ProxyConfig;
use crate::proxy::payload::{FieldPath, TextField, phrase_keys, text_fields};
use crate::stamp::{self, Expected, Mismatch, Stamp, StampKey};

/// How one point was judged.
#[derive(Debug, Clone, PartialEq)]
pub struct PointDecision {
    pub id: ChunkId,
    pub action: Action,
    pub score: f32,
    /// Reason codes, first occurrence order.
    pub reasons: Vec<String>,
    /// Decided by a trusted stamp, without scanning.
    pub stamped: bool,
    /// Why a stamp the point carried was not trusted.
    pub stamp_mismatch: Option<Mismatch>,
    pub fields: Vec<TextField>,
    /// Per field: the text to hand to the LLM (normalized, hidden characters removed); `None`
    /// when the field was not scanned.
    pub sanitized: Vec<Option<String>>,
    /// Content hash of the fields (see `stamp.rs`).
    pub sha256: String,
}

/// What of a payload is scanned and hashed: its text fields, and its keys that read as text.
fn point_fields(
    payload: &Map<String, Value>,
    paths: &[FieldPath],
    skip_key: Option<&str>,
) -> Vec<TextField> {
    let mut fields = text_fields(payload, paths, skip_key);
    fields.extend(phrase_keys(payload, skip_key));
    fields
}

/// Bytes shared by consecutive pieces of a long field, so that an instruction cut by a piece
/// boundary is whole in one of them.
const PIECE_OVERLAP: usize = 2048;

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `text` cut into pieces of at most `max` bytes (at char boundaries, preferring whitespace),
/// each starting `overlap` bytes before the previous one ended.
fn pieces(text: &str, max: usize, overlap: usize) -> Vec<&str> {
    if text.len() <= max {
        return vec![text];
    }
    let overlap = overlap.min(max / 4);
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = floor_char_boundary(text, (start + max).min(text.len()));
        if end < text.len()
            && let Some(ws) = text[start..end].rfind(char::is_whitespace)
            && ws > max / 2
        {
            end = start + ws;
        }
        if end <= start {
            end = (start + 1..=text.len())
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(text.len());
        }
        out.push(&text[start..end]);
        if end == text.len() {
            break;
        }
        start = floor_char_boundary(text, end.saturating_sub(overlap)).max(start + 1);
        start = (start..=text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
    }
    out
}

/// Turns payloads into decisions.
#[derive(Debug, Clone)]
pub struct Scanner {
    fw: Arc<Firewall>,
    max_point_text_bytes: usize,
    key: Option<StampKey>,
    trust_stamps: bool,
    want_sanitized: bool,
    normalize: NormalizeOptions,
    default_paths: Vec<FieldPath>,
    paths: HashMap<String, Vec<FieldPath>>,
}

fn parse_all(paths: &[String]) -> Result<Vec<FieldPath>, String> {
    paths.iter().map(|p| FieldPath::parse(p)).collect()
}

impl Scanner {
    pub fn new(
        fw: Arc<Firewall>,
        cfg: &ProxyConfig,
        normalize: NormalizeOptions,
        key: Option<StampKey>,
    ) -> Result<Self, String> {
        let mut paths = HashMap::new();
        for (name, c) in &cfg.collections {
            paths.insert(name.clone(), parse_all(&c.text_fields)?);
        }
        Ok(Scanner {
            fw,
            max_point_text_bytes: cfg.max_point_text_bytes,
            key,
            trust_stamps: cfg.trust_stamps,
            want_sanitized: cfg.wrap,
            normalize,
            default_paths: parse_all(&cfg.text_fields)?,
            paths,
        })
    }

    pub fn firewall(&self) -> &Arc<Firewall> {
        &self.fw
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    fn paths_for(&self, collection: Option<&str>) -> &[FieldPath] {
        collection
            .and_then(|c| self.paths.get(c))
            .unwrap_or(&self.default_paths)
    }

    fn expected<'a>(&'a self, sha256: &'a str, collection: Option<&'a str>) -> Expected<'a> {
        Expected {
            sha256,
            detector: self.fw.detector_id(),
            policy: &self.fw.policy().version,
            collection: collection.unwrap_or(""),
        }
    }

    /// Decides every point. `trust_stamps = false` ignores stamps (ingestion: a client's payload
    /// is never taken at its word). Fails as a whole when the firewall does.
    pub fn decide(
        &self,
        collection: Option<&str>,
        points: &[(ChunkId, &Map<String, Value>)],
        trust_stamps: bool,
    ) -> Result<Vec<PointDecision>, FirewallError> {
        self.decide_by(collection, points, trust_stamps, None)
    }

    /// [`Scanner::decide`] that gives up between batches once `deadline` (instant, and its
    /// length in ms for the error) has passed, so work nobody waits for stops.
    pub fn decide_by(
        &self,
        collection: Option<&str>,
        points: &[(ChunkId, &Map<String, Value>)],
        trust_stamps: bool,
        deadline: Option<(std::time::Instant, u64)>,
    ) -> Result<Vec<PointDecision>, FirewallError> {
        let paths = self.paths_for(collection);
        let mut out: Vec<PointDecision> = Vec::with_capacity(points.len());
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut owner: Vec<(usize, usize)> = Vec::new();
        // Fields scanned in pieces: their text for the LLM is the whole field's, made once below.
        let mut split: Vec<(usize, usize)> = Vec::new();
        for (pi, (id, payload)) in points.iter().enumerate() {
            let clean = point_fields(payload, paths, Some(stamp::PAYLOAD_KEY));
            let sha256 = stamp::content_sha256(clean.iter().map(|f| (&*f.path, &*f.text)));
            let mut mismatch = None;
            if let Some(raw) = payload.get(stamp::PAYLOAD_KEY)
                && trust_stamps
                && self.trust_stamps
                && let Some(key) = &self.key
            {
                match Stamp::from_value(raw).and_then(|s| {
                    s.verify(key, self.expected(&sha256, collection))
                        .map(|()| s)
                }) {
                    Ok(s) => {
                        let sanitized = clean
                            .iter()
                            .map(|f| {
                                self.want_sanitized
                                    .then(|| normalize(&f.text, &self.normalize).sanitized)
                            })
                            .collect();
                        out.push(PointDecision {
                            id: id.clone(),
                            action: s.action,
                            score: s.score as f32,
                            reasons: s.reasons,
                            stamped: true,
                            stamp_mismatch: None,
                            fields: clean,
                            sanitized,
                            sha256,
                        });
                        continue;
                    }
                    Err(m) => mismatch = Some(m),
                }
            }
            // Unstamped, or a stamp we do not trust: everything in the payload is data, the
            // `ragwall` key included.
            let fields = if payload.contains_key(stamp::PAYLOAD_KEY) {
                point_fields(payload, paths, None)
            } else {
                clean
            };
            // Long fields are scanned in pieces, like any long chunk, up to the point's text
            // budget; text beyond it is unscanned and the point alone gets `on_error`.
            let max_piece = self.fw.limits().max_chunk_bytes;
            let mut budget = self.max_point_text_bytes;
            let mut over_budget = false;
            for (fi, f) in fields.iter().enumerate() {
                let take = floor_char_boundary(&f.text, budget.min(f.text.len()));
                over_budget |= take < f.text.len();
                budget -= take;
                let parts = pieces(&f.text[..take], max_piece, PIECE_OVERLAP);
                if parts.len() > 1 {
                    split.push((pi, fi));
                }
                for piece in parts {
                    chunks.push(Chunk {
                        id: id.clone(),
                        text: piece.to_owned(),
                        collection: collection.map(str::to_owned),
                        source: Some(f.path.clone()),
                        metadata: None,
                    });
                    owner.push((pi, fi));
                }
            }
            let mut reasons = Vec::new();
            let mut action = Action::Allow;
            if over_budget {
                action = self.fw.policy().on_error;
                reasons.push("limit.point_text_bytes".to_owned());
            }
            out.push(PointDecision {
                id: id.clone(),
                action,
                score: 0.0,
                reasons,
                stamped: false,
                stamp_mismatch: mismatch,
                sanitized: vec![None; fields.len()],
                fields,
                sha256,
            });
        }
        let per_call = self.fw.limits().max_chunks_per_call.max(1);
        for (batch, owners) in chunks.chunks(per_call).zip(owner.chunks(per_call)) {
            if let Some((at, ms)) = deadline
                && std::time::Instant::now() >= at
            {
                return Err(FirewallError::Deadline(ms));
            }
            let verdicts = self.fw.inspect(batch)?;
            for (v, &(pi, fi)) in verdicts.into_iter().zip(owners) {
                let d = &mut out[pi];
                d.action = d.action.max(v.action);
                d.score = d.score.max(v.score);
                for r in v.reasons {
                    if !d.reasons.contains(&r.code) {
                        d.reasons.push(r.code);
                    }
                }
                d.sanitized[fi] = v.sanitized;
            }
        }
        for (pi, fi) in split {
            let d = &mut out[pi];
            d.sanitized[fi] = Some(normalize(&d.fields[fi].text, &self.normalize).sanitized);
        }
        Ok(out)
    }

    /// Judges loose texts of a response (group ids, facet values: payload values returned outside
    /// any point), one action each, in order. Fails as a whole when the firewall does.
    pub fn judge_texts(
        &self,
        collection: Option<&str>,
        texts: &[(usize, String)],
    ) -> Result<Vec<Action>, FirewallError> {
        let chunks: Vec<Chunk> = texts
            .iter()
            .map(|(i, t)| Chunk {
                id: ChunkId::from(*i as u64),
                text: t.clone(),
                collection: collection.map(str::to_owned),
                source: None,
                metadata: None,
            })
            .collect();
        let mut out = Vec::with_capacity(chunks.len());
        for batch in chunks.chunks(self.fw.limits().max_chunks_per_call.max(1)) {
            out.extend(self.fw.inspect(batch)?.into_iter().map(|v| v.action));
        }
        Ok(out)
    }

    /// A signed stamp for a decision, if a key is configured.
    pub fn stamp(&self, collection: Option<&str>, d: &PointDecision) -> Option<Value> {
        let key = self.key.as_ref()?;
        Some(
            Stamp::sign(
                key,
                d.action,
                d.score,
                d.reasons.clone(),
                self.expected(&d.sha256, collection),
            )
            .to_value(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_text_with_overlap_at_char_boundaries() {
        let text = "héllo wörld ".repeat(5000);
        let ps = pieces(&text, 4096, 256);
        assert!(ps.len() > 10);
        assert!(ps.iter().all(|p| p.len() <= 4096));
        // Every byte is in some piece, and consecutive pieces share their edges.
        let mut covered = 0;
        for p in &ps {
            let start = p.as_ptr() as usize - text.as_ptr() as usize;
            assert!(start <= covered, "gap before byte {covered}");
            covered = covered.max(start + p.len());
        }
        assert_eq!(covered, text.len());
        assert_eq!(pieces("short", 4096, 256), vec!["short"]);
        // No whitespace at all still splits.
        let solid = "ж".repeat(10_000);
        assert!(pieces(&solid, 1000, 100).iter().all(|p| p.len() <= 1000));
    }
}
