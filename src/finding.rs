//! Evidence shared by every stage: what was found, where, and how bad it is.
//!
//! Normalization, the rules and the classifier all speak in [`Finding`]s so that the policy can
//! act on any of them with one mechanism (a severity → action table) and the audit trail can say
//! exactly why a chunk was stopped.

use serde::{Deserialize, Serialize};

/// How much a finding alone should worry the policy. Ordered: `Info < … < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A half-open byte range `[start, end)` into the chunk's **original** text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// What kind of evidence a finding is. Serialized flat into the finding as `"kind": "…"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FindingKind {
    /// Unicode tag characters (U+E0000–U+E007F) spelling hidden ASCII ("ASCII smuggling").
    TagCharacters,
    /// Runs of variation selectors encoding bytes after a base character.
    VariationSelectors,
    /// Bidirectional overrides/isolates that reorder what a human sees.
    BidiControl,
    /// Zero-width and other default-ignorable characters.
    InvisibleCharacter,
    /// Characters NFKC rewrote (fullwidth, mathematical alphanumerics, ligatures…).
    CompatibilityForm,
    /// Letters from another script that look like ASCII (UTS #39 confusables).
    Homoglyph,
    /// Chat-template or role tokens (`<|im_start|>`, `[INST]`, `### System:` …).
    TemplateToken,
    /// A rule from a rule pack matched.
    Rule { id: String, category: String },
    /// The ONNX classifier scored a window at or above its reporting threshold.
    Classifier { model: String },
}

impl FindingKind {
    /// Stable label for metrics and reasons (`rule` ids are not included to bound cardinality).
    pub fn label(&self) -> &'static str {
        match self {
            FindingKind::TagCharacters => "tag_characters",
            FindingKind::VariationSelectors => "variation_selectors",
            FindingKind::BidiControl => "bidi_control",
            FindingKind::InvisibleCharacter => "invisible_character",
            FindingKind::CompatibilityForm => "compatibility_form",
            FindingKind::Homoglyph => "homoglyph",
            FindingKind::TemplateToken => "template_token",
            FindingKind::Rule { .. } => "rule",
            FindingKind::Classifier { .. } => "classifier",
        }
    }
}

/// Where in the chunk a detector-level finding was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    /// The visible (normalized) text.
    #[default]
    Visible,
    /// Text that was hidden in invisible characters and decoded by normalization.
    Hidden,
}

/// One piece of evidence about a chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    #[serde(flatten)]
    pub kind: FindingKind,
    pub severity: Severity,
    /// Span of the first occurrence in the original text, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// How many occurrences were folded into this finding.
    pub count: u32,
    #[serde(default, skip_serializing_if = "is_visible")]
    pub location: Location,
    pub detail: String,
}

fn is_visible(l: &Location) -> bool {
    *l == Location::Visible
}

impl Finding {
    pub fn new(kind: FindingKind, severity: Severity, span: Option<Span>, detail: String) -> Self {
        Finding {
            kind,
            severity,
            span,
            count: 1,
            location: Location::Visible,
            detail,
        }
    }
}
