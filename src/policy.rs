//! Policy: scores and findings in, an action and its reasons out.
//!
//! Two mechanisms, one ladder. A chunk's score is compared with per-collection thresholds
//! (`tag`, `quarantine`, `block`), and every finding's severity maps to a minimum action; the
//! chunk gets the strictest action any of them reaches. Every contribution above `allow` is
//! recorded as a [`Reason`], so a verdict always explains itself.
//!
//! Errors are decided here too: a chunk that could not be scanned gets `on_error` (default
//! `block`): ragwall fails closed unless the operator says otherwise.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, Severity};

/// What happens to a chunk. Ordered from most to least permissive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Pass unchanged.
    Allow,
    /// Pass, annotated with the verdict.
    Tag,
    /// Remove from the results and record it.
    Quarantine,
    /// Refuse the whole request/response that contains it.
    Block,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Allow,
        Action::Tag,
        Action::Quarantine,
        Action::Block,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Tag => "tag",
            Action::Quarantine => "quarantine",
            Action::Block => "block",
        }
    }

    /// Whether the chunk's text may reach the prompt.
    pub fn passes(self) -> bool {
        matches!(self, Action::Allow | Action::Tag)
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown action {s:?} (expected allow, tag, quarantine or block)")
            })
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A score threshold: a number in `[0, 1]`, or `"calibrated"` for the detector's own calibrated
/// operating point for that rung (`tag` and `quarantine` each have one, measured on the
/// calibration split of the evaluation suite; `block` uses the quarantine calibration).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    Value(f32),
    Named(Calibrated),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Calibrated {
    Calibrated,
}

impl Threshold {
    pub const CALIBRATED: Threshold = Threshold::Named(Calibrated::Calibrated);

    /// The numeric value; `calibrated` takes the detector's calibration, or `fallback` when it
    /// has none (rules only).
    pub fn resolve(self, calibrated: Option<f32>, fallback: f32) -> f32 {
        match self {
            Threshold::Value(v) => v,
            Threshold::Named(_) => calibrated.unwrap_or(fallback),
        }
    }
}

/// Thresholds and finding actions for one collection. In `[policy.collections.NAME]` every field
/// is optional and falls back to `[policy.default]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesOverride {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<Threshold>,
    /// A rule match in visible text acts beyond `tag` only when the score reaches this
    /// (default: the `tag` threshold): rules are evidence, the model decides. Hidden-channel
    /// findings (tag characters, word-splitting invisibles, homoglyph words, rules matching
    /// decoded hidden text) are not capped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_confirm: Option<Threshold>,
    /// Minimum action for a finding of each severity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<Severity, Action>,
}

/// `[policy]` in the config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Recorded in every verdict and audit line; bump it whenever you change the policy.
    pub version: String,
    /// Action for a chunk that could not be scanned (classifier failure, oversized, bad input).
    pub on_error: Action,
    pub default: RulesOverride,
    pub collections: BTreeMap<String, RulesOverride>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            version: "default-1".into(),
            on_error: Action::Block,
            default: RulesOverride {
                tag: Some(Threshold::CALIBRATED),
                quarantine: Some(Threshold::CALIBRATED),
                block: None,
                rule_confirm: None,
                findings: BTreeMap::from([
                    (Severity::Info, Action::Allow),
                    (Severity::Low, Action::Allow),
                    (Severity::Medium, Action::Tag),
                    (Severity::High, Action::Quarantine),
                    (Severity::Critical, Action::Quarantine),
                ]),
            },
            collections: BTreeMap::new(),
        }
    }
}

/// Why a policy is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy {scope}: {what} threshold {value} is outside [0, 1]")]
    OutOfRange {
        scope: String,
        what: &'static str,
        value: f32,
    },
    #[error("policy {scope}: thresholds must rise from tag to quarantine to block ({detail})")]
    Order { scope: String, detail: String },
    #[error("policy: version must not be empty")]
    NoVersion,
}

/// Why a chunk got its action. `code` is stable (`score`, `finding.tag_characters`,
/// `rule.<id>`, `error.<kind>`, `limit.<what>`) for metrics and alerting; `detail` is for humans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub action: Action,
    pub detail: String,
}

/// Resolved thresholds for one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub tag: Option<f32>,
    pub quarantine: Option<f32>,
    pub block: Option<f32>,
    /// Score a visible rule match needs to act beyond `tag`; `None` means the `tag` threshold.
    pub rule_confirm: Option<f32>,
    pub findings: BTreeMap<Severity, Action>,
}

/// The detector's calibrated operating points, which `"calibrated"` thresholds take.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Calibration {
    /// Quarantine (and block) calibration; without one, `calibrated` means 0.5.
    pub quarantine: Option<f32>,
    /// Tag calibration; without one, `calibrated` means 0.35.
    pub tag: Option<f32>,
}

impl Calibration {
    /// What `detector` reports.
    pub fn of(detector: &dyn crate::detect::Detector) -> Self {
        Calibration {
            quarantine: detector.calibrated_threshold(),
            tag: detector.calibrated_tag_threshold(),
        }
    }
}

impl From<Option<f32>> for Calibration {
    fn from(quarantine: Option<f32>) -> Self {
        Calibration {
            quarantine,
            tag: None,
        }
    }
}

/// A validated policy, ready to decide.
#[derive(Debug, Clone)]
pub struct Policy {
    pub version: String,
    pub on_error: Action,
    default: Resolved,
    collections: HashMap<String, Resolved>,
}

impl Policy {
    /// Validates and resolves `cfg`; `calibrated` is the detector's calibrated threshold.
    pub fn new(
        cfg: &PolicyConfig,
        calibrated: impl Into<Calibration>,
    ) -> Result<Self, PolicyError> {
        let calibrated = calibrated.into();
        if cfg.version.trim().is_empty() {
            return Err(PolicyError::NoVersion);
        }
        // Keys missing from [policy.default] fall back to the built-in defaults.
        let base = PolicyConfig::default().default;
        let default = resolve("default", &base, &cfg.default, calibrated)?;
        let mut collections = HashMap::new();
        for (name, o) in &cfg.collections {
            collections.insert(
                name.clone(),
                resolve(
                    &format!("collection {name:?}"),
                    &default.to_override(),
                    o,
                    calibrated,
                )?,
            );
        }
        Ok(Policy {
            version: cfg.version.clone(),
            on_error: cfg.on_error,
            default,
            collections,
        })
    }

    pub fn for_collection(&self, collection: Option<&str>) -> &Resolved {
        collection
            .and_then(|c| self.collections.get(c))
            .unwrap_or(&self.default)
    }

    /// Decides a scanned chunk.
    pub fn decide(
        &self,
        collection: Option<&str>,
        score: f32,
        findings: &[Finding],
    ) -> (Action, Vec<Reason>) {
        let rules = self.for_collection(collection);
        let mut reasons = Vec::new();
        let ladder = [
            (Action::Block, rules.block),
            (Action::Quarantine, rules.quarantine),
            (Action::Tag, rules.tag),
        ];
        if let Some((action, t)) = ladder
            .iter()
            .find_map(|&(a, t)| t.filter(|&t| score >= t).map(|t| (a, t)))
        {
            reasons.push(Reason {
                code: "score".into(),
                action,
                detail: format!("score {score:.3} ≥ {action} threshold {t:.3}"),
            });
        }
        for f in findings {
            let mut action = rules
                .findings
                .get(&f.severity)
                .copied()
                .unwrap_or(Action::Allow);
            let visible_rule = matches!(f.kind, crate::finding::FindingKind::Rule { .. })
                && f.location == crate::finding::Location::Visible;
            if visible_rule && rules.rule_confirm.or(rules.tag).is_some_and(|c| score < c) {
                action = action.min(Action::Tag);
            }
            if action > Action::Allow {
                let code = match &f.kind {
                    crate::finding::FindingKind::Rule { id, .. } => format!("rule.{id}"),
                    k => format!("finding.{}", k.label()),
                };
                // One reason per code is enough; the findings list has every occurrence.
                if reasons.iter().any(|r| r.code == code) {
                    continue;
                }
                reasons.push(Reason {
                    code,
                    action,
                    detail: format!("{} finding: {}", f.severity.as_str(), f.detail),
                });
            }
        }
        let action = reasons
            .iter()
            .map(|r| r.action)
            .max()
            .unwrap_or(Action::Allow);
        (action, reasons)
    }
}

impl Resolved {
    fn to_override(&self) -> RulesOverride {
        RulesOverride {
            tag: self.tag.map(Threshold::Value),
            quarantine: self.quarantine.map(Threshold::Value),
            block: self.block.map(Threshold::Value),
            rule_confirm: self.rule_confirm.map(Threshold::Value),
            findings: self.findings.clone(),
        }
    }
}

fn resolve(
    scope: &str,
    base: &RulesOverride,
    o: &RulesOverride,
    calibrated: Calibration,
) -> Result<Resolved, PolicyError> {
    let pick = |what: &'static str, ov: Option<Threshold>, b: Option<Threshold>| {
        let (cal, fallback) = match what {
            "tag" => (calibrated.tag, 0.35),
            _ => (calibrated.quarantine, 0.5),
        };
        let v = ov.or(b).map(|t| t.resolve(cal, fallback));
        match v {
            Some(v) if !(0.0..=1.0).contains(&v) || v.is_nan() => Err(PolicyError::OutOfRange {
                scope: scope.to_owned(),
                what,
                value: v,
            }),
            v => Ok(v),
        }
    };
    let tag = pick("tag", o.tag, base.tag)?;
    let quarantine = pick("quarantine", o.quarantine, base.quarantine)?;
    let block = pick("block", o.block, base.block)?;
    let rule_confirm = pick("rule_confirm", o.rule_confirm, base.rule_confirm)?;
    let set: Vec<(&str, f32)> = [("tag", tag), ("quarantine", quarantine), ("block", block)]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect();
    for w in set.windows(2) {
        if w[0].1 > w[1].1 {
            return Err(PolicyError::Order {
                scope: scope.to_owned(),
                detail: format!("{} = {} > {} = {}", w[0].0, w[0].1, w[1].0, w[1].1),
            });
        }
    }
    let mut findings = base.findings.clone();
    findings.extend(o.findings.iter().map(|(k, v)| (*k, *v)));
    Ok(Resolved {
        tag,
        quarantine,
        block,
        rule_confirm,
        findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::{FindingKind, Span};

    fn finding(sev: Severity) -> Finding {
        Finding::new(
            FindingKind::TagCharacters,
            sev,
            Some(Span::new(0, 1)),
            "x".into(),
        )
    }

    fn rule(location: crate::finding::Location) -> Finding {
        let mut f = Finding::new(
            FindingKind::Rule {
                id: "override".into(),
                category: "instruction_override".into(),
            },
            Severity::High,
            Some(Span::new(0, 1)),
            "x".into(),
        );
        f.location = location;
        f
    }

    #[test]
    fn visible_rule_matches_need_the_score_to_quarantine() {
        use crate::finding::Location;
        let p = Policy::new(&PolicyConfig::default(), Some(0.8)).expect("valid");
        // Below the tag threshold (0.35, the default confirmation) a high rule only tags…
        let (a, reasons) = p.decide(None, 0.1, &[rule(Location::Visible)]);
        assert_eq!(a, Action::Tag);
        assert_eq!(reasons[0].code, "rule.override");
        // …the model agreeing lets it act at its severity…
        assert_eq!(
            p.decide(None, 0.4, &[rule(Location::Visible)]).0,
            Action::Quarantine
        );
        // …and a rule matching decoded hidden text is never capped.
        assert_eq!(
            p.decide(None, 0.0, &[rule(Location::Hidden)]).0,
            Action::Quarantine
        );
        // Hidden-channel findings of normalization are not capped either.
        assert_eq!(
            p.decide(None, 0.0, &[finding(Severity::High)]).0,
            Action::Quarantine
        );
        // An explicit confirmation threshold overrides the tag threshold.
        let cfg: PolicyConfig = toml::from_str("[default]\nrule_confirm = 0.9\n").expect("toml");
        let p = Policy::new(&cfg, Some(0.8)).expect("valid");
        assert_eq!(
            p.decide(None, 0.5, &[rule(Location::Visible)]).0,
            Action::Tag
        );
    }

    #[test]
    fn default_policy_ladder() {
        let p = Policy::new(&PolicyConfig::default(), Some(0.8)).expect("valid");
        assert_eq!(p.decide(None, 0.1, &[]).0, Action::Allow);
        assert_eq!(p.decide(None, 0.5, &[]).0, Action::Tag);
        assert_eq!(p.decide(None, 0.8, &[]).0, Action::Quarantine);
        assert_eq!(
            p.decide(None, 0.1, &[finding(Severity::Medium)]).0,
            Action::Tag
        );
        let (a, reasons) = p.decide(None, 0.1, &[finding(Severity::High)]);
        assert_eq!(a, Action::Quarantine);
        assert_eq!(reasons[0].code, "finding.tag_characters");
        assert_eq!(p.on_error, Action::Block, "fail closed by default");
    }

    #[test]
    fn calibrated_falls_back_to_half_without_a_model() {
        let p = Policy::new(&PolicyConfig::default(), None).expect("valid");
        assert_eq!(p.for_collection(None).quarantine, Some(0.5));
    }

    #[test]
    fn collection_overrides_inherit_the_default() {
        let cfg: PolicyConfig = toml::from_str(
            r#"
version = "t1"
[default]
tag = 0.3
quarantine = 0.6
[collections.public_web]
quarantine = 0.4
block = 0.95
findings = { medium = "quarantine" }
"#,
        )
        .expect("parses");
        let p = Policy::new(&cfg, None).expect("valid");
        let web = p.for_collection(Some("public_web"));
        assert_eq!(
            (web.tag, web.quarantine, web.block),
            (Some(0.3), Some(0.4), Some(0.95))
        );
        assert_eq!(p.decide(Some("public_web"), 0.97, &[]).0, Action::Block);
        assert_eq!(p.decide(Some("other"), 0.97, &[]).0, Action::Quarantine);
        assert_eq!(
            p.decide(Some("public_web"), 0.0, &[finding(Severity::Medium)])
                .0,
            Action::Quarantine
        );
        assert_eq!(
            p.decide(None, 0.0, &[finding(Severity::High)]).0,
            Action::Quarantine
        );
    }

    #[test]
    fn invalid_policies_are_refused() {
        let bad: PolicyConfig =
            toml::from_str("[default]\ntag = 0.9\nquarantine = 0.5").expect("parses");
        assert!(matches!(
            Policy::new(&bad, None),
            Err(PolicyError::Order { .. })
        ));
        let bad: PolicyConfig = toml::from_str("[default]\nquarantine = 1.5").expect("parses");
        assert!(matches!(
            Policy::new(&bad, None),
            Err(PolicyError::OutOfRange { .. })
        ));
        assert!(toml::from_str::<PolicyConfig>("[default]\nquarantine = \"sometimes\"").is_err());
        assert!(toml::from_str::<PolicyConfig>("[default]\nunknown = 1").is_err());
    }
}
