//! The one entry point every adapter calls: chunks in, verdicts out.
//!
//! `Firewall::inspect` runs normalize → detect → policy for a batch. It is synchronous and pure
//! apart from the detector it was given; adapters (CLI, HTTP service, Qdrant proxy, offline
//! scanner) turn their input into [`Chunk`]s and their output from [`Verdict`]s, and run it on a
//! blocking thread when they are async.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::chunk::{Chunk, ChunkId, Verdict};
use crate::config::{Config, Limits};
use crate::detect::{DetectError, Detector};
use crate::finding::{Finding, Location};
use crate::normalize::{NormalizeOptions, Normalized, normalize};
use crate::policy::{Action, Calibration, Policy, PolicyError, Reason};
use crate::wrap::{WrapItem, WrapMode, Wrapped, wrap};

/// Why a whole call could not be inspected. Per-chunk problems are verdicts, not errors.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("too many chunks in one call: {got} > {max}")]
    TooManyChunks { got: usize, max: usize },
    #[error(transparent)]
    Detector(#[from] DetectError),
    /// The caller's deadline passed between batches; what was not scanned is not returned.
    #[error("the scan deadline of {0} ms passed; nothing was returned as scanned")]
    Deadline(u64),
}

/// How deep hidden text is unpacked (hidden text inside hidden text…).
const MAX_HIDDEN_DEPTH: usize = 2;

/// normalize → detect → policy, configured once.
#[derive(Debug, Clone)]
pub struct Firewall {
    normalize: NormalizeOptions,
    limits: Limits,
    detector: Arc<dyn Detector>,
    detector_id: String,
    policy: Policy,
    wrap_mode: WrapMode,
    datamark: char,
}

/// One text a detector must score, and where it belongs.
struct Job {
    chunk: usize,
    location: Location,
    /// Span in the original chunk for hidden texts (detector spans inside them are meaningless
    /// to a reader of the original).
    hidden_span: Option<crate::finding::Span>,
    norm_index: usize,
}

impl Firewall {
    pub fn new(config: &Config, detector: Arc<dyn Detector>) -> Result<Self, PolicyError> {
        let policy = Policy::new(&config.policy, Calibration::of(detector.as_ref()))?;
        Ok(Firewall {
            normalize: config.normalize.clone(),
            limits: config.limits.clone(),
            detector_id: detector.id(),
            detector,
            policy,
            wrap_mode: config.wrap.mode,
            datamark: config.wrap.datamark,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn detector(&self) -> &Arc<dyn Detector> {
        &self.detector
    }

    pub fn detector_id(&self) -> &str {
        &self.detector_id
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Inspects a batch. Either every chunk gets a verdict, or the call fails as a whole (too
    /// many chunks, detector failure); callers must then fail closed.
    pub fn inspect(&self, chunks: &[Chunk]) -> Result<Vec<Verdict>, FirewallError> {
        if chunks.len() > self.limits.max_chunks_per_call {
            return Err(FirewallError::TooManyChunks {
                got: chunks.len(),
                max: self.limits.max_chunks_per_call,
            });
        }
        let mut verdicts: Vec<Option<Verdict>> = vec![None; chunks.len()];
        let mut norms: Vec<Normalized> = Vec::new();
        let mut jobs: Vec<Job> = Vec::new();
        let mut norm_of_chunk: Vec<Option<usize>> = vec![None; chunks.len()];
        for (ci, chunk) in chunks.iter().enumerate() {
            if chunk.text.len() > self.limits.max_chunk_bytes {
                verdicts[ci] = Some(self.unscanned(
                    &chunk.id,
                    chunk.collection.as_deref(),
                    chunk.source.as_deref(),
                    Some(&chunk.text),
                    "limit.chunk_bytes",
                    format!(
                        "chunk is {} bytes, more than max_chunk_bytes = {}",
                        chunk.text.len(),
                        self.limits.max_chunk_bytes
                    ),
                ));
                continue;
            }
            let n = normalize(&chunk.text, &self.normalize);
            norm_of_chunk[ci] = Some(norms.len());
            jobs.push(Job {
                chunk: ci,
                location: Location::Visible,
                hidden_span: None,
                norm_index: norms.len(),
            });
            let mut pending: Vec<(usize, crate::finding::Span, String)> = n
                .hidden
                .iter()
                .map(|h| (1, h.span, h.text.clone()))
                .collect();
            norms.push(n);
            // Hidden text is normalized and scanned like visible text; what it hides in turn is
            // unpacked up to MAX_HIDDEN_DEPTH.
            while let Some((depth, span, text)) = pending.pop() {
                let mut hn = normalize(&text, &self.normalize);
                if depth < MAX_HIDDEN_DEPTH {
                    pending.extend(hn.hidden.iter().map(|h| (depth + 1, span, h.text.clone())));
                }
                for f in &mut hn.findings {
                    f.location = Location::Hidden;
                    f.span = Some(span);
                }
                jobs.push(Job {
                    chunk: ci,
                    location: Location::Hidden,
                    hidden_span: Some(span),
                    norm_index: norms.len(),
                });
                norms.push(hn);
            }
        }

        let texts: Vec<&str> = jobs
            .iter()
            .map(|j| norms[j.norm_index].text.as_str())
            .collect();
        let detections = if texts.is_empty() {
            Vec::new()
        } else {
            self.detector.detect(&texts)?
        };
        if detections.len() != texts.len() {
            return Err(DetectError::Failed(format!(
                "detector returned {} results for {} texts",
                detections.len(),
                texts.len()
            ))
            .into());
        }

        let mut scores = vec![0.0f32; chunks.len()];
        let mut findings: Vec<Vec<Finding>> = vec![Vec::new(); chunks.len()];
        for (job, det) in jobs.iter().zip(detections) {
            let n = &norms[job.norm_index];
            let score = if det.score.is_finite() {
                det.score.clamp(0.0, 1.0)
            } else {
                // A NaN score is a detector failure, never a pass.
                return Err(
                    DetectError::Failed("detector returned a non-finite score".into()).into(),
                );
            };
            scores[job.chunk] = scores[job.chunk].max(score);
            let out = &mut findings[job.chunk];
            out.extend(n.findings.iter().cloned());
            for mut f in det.findings {
                f.location = job.location;
                f.span = match job.hidden_span {
                    Some(s) => Some(s),
                    None => f.span.map(|s| n.original_span(s.start, s.end)),
                };
                out.push(f);
            }
        }

        for (ci, chunk) in chunks.iter().enumerate() {
            if verdicts[ci].is_some() {
                continue;
            }
            let Some(ni) = norm_of_chunk[ci] else {
                continue;
            };
            let f = std::mem::take(&mut findings[ci]);
            let (action, reasons) = self
                .policy
                .decide(chunk.collection.as_deref(), scores[ci], &f);
            verdicts[ci] = Some(Verdict {
                id: chunk.id.clone(),
                action,
                score: scores[ci],
                reasons,
                findings: f,
                sha256: sha256_hex(&chunk.text),
                collection: chunk.collection.clone(),
                source: chunk.source.clone(),
                scanned: true,
                policy_version: self.policy.version.clone(),
                detector: self.detector_id.clone(),
                sanitized: Some(std::mem::take(&mut norms[ni].sanitized)),
            });
        }
        Ok(verdicts.into_iter().flatten().collect())
    }

    /// A verdict for a chunk that could not be scanned: `policy.on_error`, never `scanned`.
    pub fn unscanned(
        &self,
        id: &ChunkId,
        collection: Option<&str>,
        source: Option<&str>,
        text: Option<&str>,
        code: &str,
        detail: String,
    ) -> Verdict {
        let action = self.policy.on_error;
        Verdict {
            id: id.clone(),
            action,
            score: 1.0,
            reasons: vec![Reason {
                code: code.to_owned(),
                action,
                detail,
            }],
            findings: Vec::new(),
            sha256: text.map(sha256_hex).unwrap_or_default(),
            collection: collection.map(str::to_owned),
            source: source.map(str::to_owned),
            scanned: false,
            policy_version: self.policy.version.clone(),
            detector: self.detector_id.clone(),
            sanitized: None,
        }
    }

    /// Wraps the verdicts that pass (scanned and allow/tag) for the prompt builder.
    pub fn wrap(&self, verdicts: &[Verdict], mode: Option<WrapMode>, nonce: &str) -> Wrapped {
        let items: Vec<WrapItem<'_>> = verdicts
            .iter()
            .filter(|v| v.scanned && v.action.passes())
            .filter_map(|v| {
                v.sanitized.as_deref().map(|text| WrapItem {
                    id: v.id.to_string(),
                    collection: v.collection.as_deref(),
                    source: v.source.as_deref(),
                    score: v.score,
                    action: v.action,
                    text,
                })
            })
            .collect();
        wrap(&items, mode.unwrap_or(self.wrap_mode), self.datamark, nonce)
    }
}

/// Lower-case hex sha256 of a text.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether any verdict requires blocking the whole call.
pub fn any_blocked(verdicts: &[Verdict]) -> bool {
    verdicts.iter().any(|v| v.action == Action::Block)
}
