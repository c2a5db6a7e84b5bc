//! The wire format of `/v1/*`: requests, responses, and their OpenAPI schemas.
//!
//! Chunks and verdicts travel exactly as the core serializes them (the same JSON as
//! `ragwall guard`), so every adapter speaks one format. The core knows nothing of OpenAPI, so
//! their schemas are described here by documentation-only mirrors (`*Doc`, published under the
//! core's type names); a unit test serializes real core values and fails if a key is missing from
//! its mirror.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::chunk::{Chunk, ChunkId, Verdict};
use crate::policy::{Action, Reason};
use crate::wrap::WrapMode;

/// `POST /v1/scan`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// Chunks to inspect; verdicts come back in the same order.
    #[schema(value_type = Vec<ChunkDoc>)]
    pub chunks: Vec<Chunk>,
    /// Collection for chunks that do not name one (selects policy overrides).
    #[serde(default)]
    pub collection: Option<String>,
}

/// `POST /v1/guard`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardRequest {
    /// Retrieved chunks, in prompt order.
    #[schema(value_type = Vec<ChunkDoc>)]
    pub chunks: Vec<Chunk>,
    /// Collection for chunks that do not name one (selects policy overrides).
    #[serde(default)]
    pub collection: Option<String>,
    /// Wrap mode for this request; unset means `[wrap] mode`.
    #[serde(default)]
    #[schema(value_type = Option<WrapModeDoc>)]
    pub mode: Option<WrapMode>,
}

/// Fills in the request-level collection.
pub fn with_collection(mut chunks: Vec<Chunk>, collection: Option<&str>) -> Vec<Chunk> {
    if let Some(c) = collection {
        for chunk in chunks.iter_mut().filter(|c| c.collection.is_none()) {
            chunk.collection = Some(c.to_owned());
        }
    }
    chunks
}

/// `POST /v1/scan` answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanResponse {
    pub request_id: String,
    /// Detector identity (rule packs and model sha256), as in every verdict.
    pub detector: String,
    pub policy_version: String,
    /// One verdict per chunk, in request order. `scanned: false` marks a chunk that could not be
    /// scanned (e.g. over `max_chunk_bytes`); its action is `[policy] on_error`.
    #[schema(value_type = Vec<VerdictDoc>)]
    pub verdicts: Vec<Verdict>,
}

/// A chunk that may reach the prompt.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PassedChunk {
    #[schema(value_type = ChunkIdDoc)]
    pub id: ChunkId,
    /// The sanitized text (normalized, hidden characters removed): what the context holds.
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The request's metadata for this chunk, untouched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// `allow` or `tag`.
    #[schema(value_type = ActionDoc)]
    pub action: Action,
    pub score: f32,
}

/// A chunk kept out of the prompt: quarantined, blocked, or not scanned.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RemovedChunk {
    #[schema(value_type = ChunkIdDoc)]
    pub id: ChunkId,
    #[schema(value_type = ActionDoc)]
    pub action: Action,
    pub score: f32,
    pub scanned: bool,
    #[schema(value_type = Vec<ReasonDoc>)]
    pub reasons: Vec<Reason>,
}

impl From<&Verdict> for RemovedChunk {
    fn from(v: &Verdict) -> Self {
        RemovedChunk {
            id: v.id.clone(),
            action: v.action,
            score: v.score,
            scanned: v.scanned,
            reasons: v.reasons.clone(),
        }
    }
}

/// `POST /v1/guard` answer (no chunk blocked).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GuardResponse {
    pub request_id: String,
    pub detector: String,
    pub policy_version: String,
    /// Chunks that passed (scanned, `allow` or `tag`), in request order.
    pub chunks: Vec<PassedChunk>,
    /// Every other chunk, with its reasons: quarantined, or not scanned.
    pub quarantined: Vec<RemovedChunk>,
    /// The passing chunks, each in its nonce-tagged envelope, ready to paste into the prompt.
    pub context: String,
    /// The instruction that tells the model how to read `context`; put it in the system prompt.
    pub system_instruction: String,
    #[schema(value_type = WrapModeDoc)]
    pub mode: WrapMode,
    /// The envelope nonce (fresh per request).
    pub nonce: String,
}

/// 403 from `/v1/guard`: the error, and the chunks that were blocked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockedResponse {
    pub error: crate::http::ErrorDetail,
    pub blocked: Vec<RemovedChunk>,
}

/// `GET /v1/model`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelResponse {
    pub detector: String,
    pub policy_version: String,
    /// Threshold `calibrated` resolves to (the model's 1%-FPR point), if any.
    pub calibrated_threshold: Option<f32>,
    /// The classifier, or `null` when running rules only.
    pub classifier: Option<ClassifierInfo>,
}

/// The loaded classifier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClassifierInfo {
    /// `model.toml`, verbatim (name, version, labels, sha256 of every file, training details).
    #[schema(value_type = Object)]
    pub manifest: Value,
    pub model_sha256: String,
    /// Where the model was loaded from.
    pub origin: String,
    /// Device in use (`cpu`, `cuda:0`…).
    pub device: String,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` (healthz), `ready` or `warming` (readyz).
    pub status: String,
}

// ---- Documentation-only mirrors of core types -------------------------------------------

/// A chunk id: a number (Qdrant integer ids) or a string, echoed verbatim.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChunkId)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum ChunkIdDoc {
    Num(u64),
    Str(String),
}

/// What happens to a chunk, from most to least permissive.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Action)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ActionDoc {
    Allow,
    Tag,
    Quarantine,
    Block,
}

/// How content is written inside its envelope.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WrapMode)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum WrapModeDoc {
    Delimit,
    Datamark,
    Base64,
}

/// One retrieved chunk. Unknown fields are refused.
#[derive(Debug, ToSchema)]
#[schema(as = Chunk)]
#[allow(dead_code)]
pub struct ChunkDoc {
    id: ChunkIdDoc,
    text: String,
    /// Selects the policy overrides.
    collection: Option<String>,
    /// Where the chunk came from (URL, path), carried into the envelope.
    source: Option<String>,
    /// Caller's metadata, returned untouched by `/v1/guard`.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// Why a chunk got its action. `code` is stable (`score`, `rule.<id>`, `finding.<kind>`,
/// `limit.<what>`, `error.<kind>`).
#[derive(Debug, ToSchema)]
#[schema(as = Reason)]
#[allow(dead_code)]
pub struct ReasonDoc {
    code: String,
    action: ActionDoc,
    detail: String,
}

/// A byte range `[start, end)` in the chunk's original text.
#[derive(Debug, ToSchema)]
#[schema(as = Span)]
#[allow(dead_code)]
pub struct SpanDoc {
    start: usize,
    end: usize,
}

/// One piece of evidence.
#[derive(Debug, ToSchema)]
#[schema(as = Finding)]
#[allow(dead_code)]
pub struct FindingDoc {
    /// `tag_characters`, `variation_selectors`, `bidi_control`, `invisible_character`,
    /// `compatibility_form`, `homoglyph`, `template_token`, `rule` or `classifier`.
    kind: String,
    /// Rule id (`kind = rule`).
    id: Option<String>,
    /// Rule category (`kind = rule`).
    category: Option<String>,
    /// Model name and sha256 prefix (`kind = classifier`).
    model: Option<String>,
    /// `info`, `low`, `medium`, `high` or `critical`.
    severity: String,
    span: Option<SpanDoc>,
    /// Occurrences folded into this finding.
    count: u32,
    /// `visible` (default, omitted) or `hidden`.
    location: Option<String>,
    detail: String,
}

/// The firewall's decision on one chunk.
#[derive(Debug, ToSchema)]
#[schema(as = Verdict)]
#[allow(dead_code)]
pub struct VerdictDoc {
    id: ChunkIdDoc,
    action: ActionDoc,
    /// Highest detector score over visible and hidden text, in `[0, 1]`.
    score: f32,
    reasons: Vec<ReasonDoc>,
    findings: Vec<FindingDoc>,
    /// sha256 of the original text (hex).
    sha256: String,
    collection: Option<String>,
    source: Option<String>,
    /// `false` when the chunk could not be scanned; `action` is then `[policy] on_error`.
    scanned: bool,
    policy_version: String,
    /// Detector identity: rule packs and model sha256 (the model id).
    detector: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{Finding, FindingKind, Location, Severity, Span};
    use utoipa::PartialSchema;
    use utoipa::openapi::{RefOr, Schema};

    fn properties<T: PartialSchema>() -> Vec<String> {
        match T::schema() {
            RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
            _ => panic!("not an object schema"),
        }
    }

    fn keys(v: &impl Serialize) -> Vec<String> {
        match serde_json::to_value(v).expect("serializes") {
            Value::Object(m) => m.keys().cloned().collect(),
            other => panic!("not an object: {other}"),
        }
    }

    fn assert_covered(what: &str, keys: Vec<String>, props: &[String]) {
        for k in keys {
            assert!(
                props.contains(&k),
                "{what}: key {k:?} missing from its schema"
            );
        }
    }

    #[test]
    fn schemas_cover_what_the_core_serializes() {
        let mut finding = Finding::new(
            FindingKind::Rule {
                id: "r".into(),
                category: "c".into(),
            },
            Severity::High,
            Some(Span::new(0, 1)),
            "d".into(),
        );
        finding.location = Location::Hidden;
        let verdict = Verdict {
            id: 1u64.into(),
            action: Action::Quarantine,
            score: 0.5,
            reasons: vec![Reason {
                code: "score".into(),
                action: Action::Quarantine,
                detail: "d".into(),
            }],
            findings: vec![finding.clone()],
            sha256: String::new(),
            collection: Some("c".into()),
            source: Some("s".into()),
            scanned: true,
            policy_version: "p".into(),
            detector: "d".into(),
            sanitized: Some("t".into()),
        };
        assert_covered("Verdict", keys(&verdict), &properties::<VerdictDoc>());
        assert_covered("Finding", keys(&finding), &properties::<FindingDoc>());
        let classifier = Finding::new(
            FindingKind::Classifier { model: "m".into() },
            Severity::Info,
            None,
            "d".into(),
        );
        assert_covered("Finding", keys(&classifier), &properties::<FindingDoc>());
        assert_covered(
            "Reason",
            keys(&verdict.reasons[0]),
            &properties::<ReasonDoc>(),
        );
        let mut chunk = Chunk::new(1u64, "t");
        chunk.collection = Some("c".into());
        chunk.source = Some("s".into());
        chunk.metadata = Some(Value::Null);
        assert_covered("Chunk", keys(&chunk), &properties::<ChunkDoc>());
    }
}
