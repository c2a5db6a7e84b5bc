//! The unit of work: a retrieved chunk going in, a verdict coming out.

use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use crate::policy::{Action, Reason};

/// A chunk's id as the caller spells it: a number (Qdrant integer ids) or a string (UUIDs,
/// document paths). Kept verbatim so callers can join verdicts back to their data.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChunkId {
    Num(serde_json::Number),
    Str(String),
}

impl std::fmt::Display for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkId::Num(n) => write!(f, "{n}"),
            ChunkId::Str(s) => f.write_str(s),
        }
    }
}

impl From<&str> for ChunkId {
    fn from(s: &str) -> Self {
        ChunkId::Str(s.to_owned())
    }
}

impl From<u64> for ChunkId {
    fn from(n: u64) -> Self {
        ChunkId::Num(n.into())
    }
}

/// One retrieved chunk. Unknown fields are ignored: chunk files usually carry more than
/// ragwall reads (retriever scores, URLs); `text` is required, so a misspelt one still fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub id: ChunkId,
    pub text: String,
    /// Collection the chunk came from; selects the policy overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Where the chunk came from (URL, file path…), carried into the wrapper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Caller's metadata, passed through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl Chunk {
    pub fn new(id: impl Into<ChunkId>, text: impl Into<String>) -> Self {
        Chunk {
            id: id.into(),
            text: text.into(),
            collection: None,
            source: None,
            metadata: None,
        }
    }
}

/// The firewall's decision on one chunk, with everything an auditor needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub id: ChunkId,
    pub action: Action,
    /// Highest detector score over the chunk's visible and hidden texts, in `[0, 1]`.
    pub score: f32,
    pub reasons: Vec<Reason>,
    pub findings: Vec<Finding>,
    /// sha256 of the chunk's original text (hex).
    pub sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `false` when the chunk could not be scanned; then `action` is the policy's `on_error`.
    pub scanned: bool,
    pub policy_version: String,
    /// Detector identity: rule-pack digest and model sha256.
    pub detector: String,
    /// The text to hand to the LLM (normalized, hidden characters removed); `None` when the
    /// chunk was not scanned, so unscanned text can never be wrapped by mistake.
    #[serde(skip)]
    pub sanitized: Option<String>,
}
