//! Detection: texts in, scores and findings out.
//!
//! Contract of [`Detector`]: synchronous and batched. `detect(texts)` returns exactly one
//! [`Detection`] per input text, in order, or an error for the whole batch; a detector never
//! returns a made-up score for a text it could not score. Scores are in `[0, 1]`, higher meaning
//! more likely an injection. Spans in findings are byte ranges into the text that was passed in;
//! the firewall maps them back to the original chunk.
//!
//! Detectors know nothing of chunks, policies, HTTP or async runtimes. The rules detector
//! ([`rules`]) and the ONNX classifier plug into the same trait, and [`Ensemble`] combines any
//! number of them.

pub mod rules;

use std::sync::Arc;

use crate::finding::Finding;

/// Result for one text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Detection {
    pub score: f32,
    pub findings: Vec<Finding>,
}

/// Why a detector could not score a batch. Whoever called it must fail closed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The detector is saturated; retrying later may work (maps to 429/503).
    #[error("detector overloaded: {0}")]
    Overloaded(String),
    /// The detector failed (model error, worker gone…).
    #[error("detector failed: {0}")]
    Failed(String),
}

/// A batched, synchronous injection detector. See the module docs for the contract.
pub trait Detector: Send + Sync + std::fmt::Debug {
    /// Identity recorded in every verdict, e.g. `rules:core@1.0.0` or `onnx:<sha256>`.
    fn id(&self) -> String;

    /// Score threshold calibrated for this detector (e.g. the model's 1%-FPR point), if any.
    fn calibrated_threshold(&self) -> Option<f32> {
        None
    }

    /// Score threshold calibrated for tagging (a larger false-positive budget), if any.
    fn calibrated_tag_threshold(&self) -> Option<f32> {
        None
    }

    /// Scores every text; one result per text, in order.
    fn detect(&self, texts: &[&str]) -> Result<Vec<Detection>, DetectError>;

    /// Whether this detector's findings are evidence for a scorer rather than a score of their
    /// own. Pattern rules are: a rule matching ordinary prose ("ignore the old instructions
    /// taped to the wall") says little without a model that reads the whole text, so in an
    /// ensemble with a scorer their score does not count and the policy lets their visible
    /// findings act beyond `tag` only when the score confirms them.
    fn is_evidence(&self) -> bool {
        false
    }
}

/// Runs several detectors over the same texts. A text's score is the maximum of the scoring
/// members' scores (any one model being sure is enough; evidence-only members such as rules
/// count only when no member scores), and its findings are the union.
#[derive(Debug, Clone)]
pub struct Ensemble {
    members: Vec<Arc<dyn Detector>>,
}

impl Ensemble {
    pub fn new(members: Vec<Arc<dyn Detector>>) -> Self {
        Ensemble { members }
    }

    pub fn members(&self) -> &[Arc<dyn Detector>] {
        &self.members
    }
}

impl Detector for Ensemble {
    fn id(&self) -> String {
        self.members
            .iter()
            .map(|d| d.id())
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The strictest calibration among members wins: it is the one whose scale the ensemble's
    /// max most resembles when that member fires.
    fn calibrated_threshold(&self) -> Option<f32> {
        self.members
            .iter()
            .filter_map(|d| d.calibrated_threshold())
            .reduce(f32::max)
    }

    fn calibrated_tag_threshold(&self) -> Option<f32> {
        self.members
            .iter()
            .filter_map(|d| d.calibrated_tag_threshold())
            .reduce(f32::max)
    }

    fn is_evidence(&self) -> bool {
        self.members.iter().all(|m| m.is_evidence())
    }

    fn detect(&self, texts: &[&str]) -> Result<Vec<Detection>, DetectError> {
        let mut out = vec![Detection::default(); texts.len()];
        let all_evidence = self.is_evidence();
        for member in &self.members {
            let counts = all_evidence || !member.is_evidence();
            let results = member.detect(texts)?;
            if results.len() != texts.len() {
                return Err(DetectError::Failed(format!(
                    "{} returned {} results for {} texts",
                    member.id(),
                    results.len(),
                    texts.len()
                )));
            }
            for (acc, r) in out.iter_mut().zip(results) {
                if counts {
                    acc.score = acc.score.max(r.score);
                }
                acc.findings.extend(r.findings);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(f32);
    impl Detector for Fixed {
        fn id(&self) -> String {
            format!("fixed:{}", self.0)
        }
        fn detect(&self, texts: &[&str]) -> Result<Vec<Detection>, DetectError> {
            Ok(texts
                .iter()
                .map(|_| Detection {
                    score: self.0,
                    findings: vec![],
                })
                .collect())
        }
    }

    #[derive(Debug)]
    struct Broken;
    impl Detector for Broken {
        fn id(&self) -> String {
            "broken".into()
        }
        fn detect(&self, _: &[&str]) -> Result<Vec<Detection>, DetectError> {
            Err(DetectError::Failed("boom".into()))
        }
    }

    #[test]
    fn ensemble_takes_the_max_and_fails_as_a_whole() {
        let e = Ensemble::new(vec![Arc::new(Fixed(0.2)), Arc::new(Fixed(0.7))]);
        let r = e.detect(&["a", "b"]).expect("ok");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].score, 0.7);
        assert_eq!(e.id(), "fixed:0.2+fixed:0.7");
        let e = Ensemble::new(vec![Arc::new(Fixed(0.2)), Arc::new(Broken)]);
        assert!(e.detect(&["a"]).is_err());
    }
}

/// Why the configured detectors could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    #[error(transparent)]
    Classifier(#[from] crate::classifier::ClassifierError),
    #[error("no detector is enabled: enable [rules] and/or [classifier]")]
    Nothing,
}

/// The detectors a config enables: one ensemble for the firewall, plus typed handles for
/// whoever needs more than the trait (the classifier's manifest and counters).
#[derive(Debug, Clone)]
pub struct Detectors {
    pub detector: Arc<dyn Detector>,
    pub classifier: Option<Arc<crate::classifier::Classifier>>,
    pub rules: Option<Arc<rules::RuleSet>>,
}

/// Builds the detectors the config enables.
pub fn from_config(cfg: &crate::config::Config) -> Result<Detectors, BuildError> {
    let rules = if cfg.rules.enabled {
        Some(Arc::new(match &cfg.rules.dir {
            Some(dir) => rules::RuleSet::from_dir(dir)?,
            None => rules::RuleSet::embedded()?,
        }))
    } else {
        None
    };
    let classifier = if cfg.classifier.enabled {
        Some(Arc::new(crate::classifier::Classifier::from_config(
            &cfg.classifier,
        )?))
    } else {
        None
    };
    let mut members: Vec<Arc<dyn Detector>> = Vec::new();
    if let Some(c) = &classifier {
        members.push(c.clone());
    }
    if let Some(r) = &rules {
        members.push(r.clone());
    }
    let detector: Arc<dyn Detector> = match members.len() {
        0 => return Err(BuildError::Nothing),
        1 => members.remove(0),
        _ => Arc::new(Ensemble::new(members)),
    };
    Ok(Detectors {
        detector,
        classifier,
        rules,
    })
}
