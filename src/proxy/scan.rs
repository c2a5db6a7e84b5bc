//! One decision per point: from a trusted stamp when it has one, else from the firewall.
//!
//! Each text field of a point is one [`Chunk`] (source = the field's path), so a verdict's spans
//! and the wrapped text are per field; the point's action is the strictest of its fields', its
//! score the highest, its reasons the union. Synchronous and CPU-bound: callers run it on a
//! blocking thread.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::chunk::{Chunk, ChunkId};
use crate::firewall::{Firewall, FirewallError};
use crate::normalize::{NormalizeOptions, normalize};
use crate::policy::Action;
use crate::proxy::config::ProxyConfig;
use crate::proxy::payload::{FieldPath, TextField, text_fields};
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

/// Turns payloads into decisions.
#[derive(Debug, Clone)]
pub struct Scanner {
    fw: Arc<Firewall>,
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
        let paths = self.paths_for(collection);
        let mut out: Vec<PointDecision> = Vec::with_capacity(points.len());
        let mut chunks: Vec<Chunk> = Vec::new();
        let mut owner: Vec<(usize, usize)> = Vec::new();
        for (pi, (id, payload)) in points.iter().enumerate() {
            let clean = text_fields(payload, paths, Some(stamp::PAYLOAD_KEY));
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
                text_fields(payload, paths, None)
            } else {
                clean
            };
            for (fi, f) in fields.iter().enumerate() {
                chunks.push(Chunk {
                    id: id.clone(),
                    text: f.text.clone(),
                    collection: collection.map(str::to_owned),
                    source: Some(f.path.clone()),
                    metadata: None,
                });
                owner.push((pi, fi));
            }
            out.push(PointDecision {
                id: id.clone(),
                action: Action::Allow,
                score: 0.0,
                reasons: Vec::new(),
                stamped: false,
                stamp_mismatch: mismatch,
                sanitized: vec![None; fields.len()],
                fields,
                sha256,
            });
        }
        let per_call = self.fw.limits().max_chunks_per_call.max(1);
        for (batch, owners) in chunks.chunks(per_call).zip(owner.chunks(per_call)) {
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
