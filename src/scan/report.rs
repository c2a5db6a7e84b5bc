//! What a scan found, as JSON and Markdown: points scanned, actions overall and by reason, a
//! score histogram, the slowest batches, throughput, and the model and policy used.
//!
//! [`Tally`] is the running state; it is pure, kept in the checkpoint so a resumed scan reports
//! the whole collection, and turned into a [`Report`] at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::policy::Action;

/// Buckets of the score histogram, each 0.1 wide (the last one includes 1.0).
pub const HISTOGRAM_BUCKETS: usize = 10;
/// Slowest batches kept.
pub const SLOWEST: usize = 5;
/// Flagged points and errors listed by id; beyond this they are only counted.
pub const MAX_LISTED: usize = 1000;

/// One judged point or record.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    pub id: &'a serde_json::Value,
    pub action: Action,
    pub score: f32,
    pub reasons: &'a [String],
    /// Decided by a valid stamp, without classification.
    pub trusted_stamp: bool,
    /// Text fields classified.
    pub chunks: usize,
}

/// A flagged (quarantine or block) point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flagged {
    pub id: serde_json::Value,
    pub action: Action,
    pub score: f32,
    pub reasons: Vec<String>,
}

/// A point or record that could not be scanned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointError {
    pub id: serde_json::Value,
    pub kind: String,
    pub message: String,
}

/// Timing of one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchTime {
    /// Batch number, from 1, counted over resumed runs.
    pub batch: u64,
    /// Id of the batch's first point.
    pub first_id: serde_json::Value,
    pub points: usize,
    pub seconds: f64,
    /// Of which classification.
    pub classify_seconds: f64,
}

/// Everything counted so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tally {
    /// Points judged (classified or by a trusted stamp).
    pub points: u64,
    /// Text fields classified.
    pub chunks: u64,
    /// Points decided by a valid stamp they already carried.
    pub trusted_stamps: u64,
    /// Points that could not be scanned (see `errors`).
    pub unscanned: u64,
    pub actions: BTreeMap<Action, u64>,
    /// Per reason code, the points it applied to, by their final action.
    pub reasons: BTreeMap<String, BTreeMap<Action, u64>>,
    /// Points per score bucket: `[0, 0.1)`, `[0.1, 0.2)`, … `[0.9, 1.0]`.
    pub histogram: [u64; HISTOGRAM_BUCKETS],
    pub stamps_written: u64,
    /// Stamps that were already what the scan would write.
    pub stamps_unchanged: u64,
    /// Points moved to the quarantine collection (or file).
    pub moved: u64,
    pub batches: u64,
    pub slowest: Vec<BatchTime>,
    /// Time spent on batches (scroll, classification, writes), over all runs, in seconds.
    pub busy_seconds: f64,
    pub classify_seconds: f64,
    /// Quarantined or blocked points, at most [`MAX_LISTED`].
    pub flagged: Vec<Flagged>,
    pub errors: Vec<PointError>,
}

fn bucket(score: f32) -> usize {
    let s = if score.is_finite() {
        score.clamp(0.0, 1.0)
    } else {
        1.0
    };
    ((s * HISTOGRAM_BUCKETS as f32) as usize).min(HISTOGRAM_BUCKETS - 1)
}

impl Tally {
    pub fn record(&mut self, o: &Outcome<'_>) {
        self.points += 1;
        self.chunks += o.chunks as u64;
        self.trusted_stamps += u64::from(o.trusted_stamp);
        *self.actions.entry(o.action).or_default() += 1;
        for r in o.reasons {
            *self
                .reasons
                .entry(r.clone())
                .or_default()
                .entry(o.action)
                .or_default() += 1;
        }
        self.histogram[bucket(o.score)] += 1;
        if !o.action.passes() && self.flagged.len() < MAX_LISTED {
            self.flagged.push(Flagged {
                id: o.id.clone(),
                action: o.action,
                score: o.score,
                reasons: o.reasons.to_vec(),
            });
        }
    }

    pub fn error(&mut self, id: &serde_json::Value, kind: &str, message: String) {
        self.unscanned += 1;
        if self.errors.len() < MAX_LISTED {
            self.errors.push(PointError {
                id: id.clone(),
                kind: kind.to_owned(),
                message,
            });
        }
    }

    /// Records a finished batch's timing.
    pub fn batch(&mut self, mut t: BatchTime) {
        self.batches += 1;
        t.batch = self.batches;
        self.busy_seconds += t.seconds;
        self.classify_seconds += t.classify_seconds;
        self.slowest.push(t);
        self.slowest
            .sort_by(|a, b| b.seconds.total_cmp(&a.seconds).then(a.batch.cmp(&b.batch)));
        self.slowest.truncate(SLOWEST);
    }

    pub fn count(&self, a: Action) -> u64 {
        self.actions.get(&a).copied().unwrap_or(0)
    }
}

/// What was scanned.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    Qdrant { url: String, collection: String },
    Files { paths: Vec<String> },
}

/// Throughput over the time spent on batches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Throughput {
    pub points_per_sec: f64,
    pub chunks_per_sec: f64,
    pub busy_seconds: f64,
}

/// The report written at the end of a scan (also when interrupted: `complete = false`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub ragwall: &'static str,
    pub source: Source,
    /// `dry-run`, `stamp`, `quarantine`, `stamp+quarantine` or `files`.
    pub mode: String,
    /// Every point was visited; `false` after an interruption (rerun to resume).
    pub complete: bool,
    /// Detector identity (rule packs and model sha256), as in verdicts and stamps.
    pub detector: String,
    pub policy_version: String,
    pub throughput: Throughput,
    pub tally: Tally,
}

impl Report {
    pub fn new(
        source: Source,
        mode: &str,
        complete: bool,
        detector: &str,
        policy_version: &str,
        tally: Tally,
    ) -> Report {
        let per = |n: u64| {
            if tally.busy_seconds > 0.0 {
                n as f64 / tally.busy_seconds
            } else {
                0.0
            }
        };
        Report {
            ragwall: env!("CARGO_PKG_VERSION"),
            source,
            mode: mode.to_owned(),
            complete,
            detector: detector.to_owned(),
            policy_version: policy_version.to_owned(),
            throughput: Throughput {
                points_per_sec: per(tally.points),
                chunks_per_sec: per(tally.chunks),
                busy_seconds: tally.busy_seconds,
            },
            tally,
        }
    }

    pub fn json(&self) -> String {
        let mut s =
            serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    }

    /// A human summary; ids and reason codes are printed as code so Markdown in them is inert.
    pub fn markdown(&self) -> String {
        let t = &self.tally;
        let mut m = String::new();
        let _ = writeln!(m, "# ragwall scan report\n");
        match &self.source {
            Source::Qdrant { url, collection } => {
                let _ = writeln!(
                    m,
                    "- Source: Qdrant {}, collection {}",
                    code(url),
                    code(collection)
                );
            }
            Source::Files { paths } => {
                let list: Vec<String> = paths.iter().map(|p| code(p)).collect();
                let _ = writeln!(m, "- Source: files {}", list.join(", "));
            }
        }
        let _ = writeln!(
            m,
            "- Mode: {} ({})",
            self.mode,
            if self.complete {
                "complete"
            } else {
                "interrupted: run again to resume"
            }
        );
        let _ = writeln!(m, "- Detector: {}", code(&self.detector));
        let _ = writeln!(m, "- Policy version: {}", code(&self.policy_version));
        let _ = writeln!(
            m,
            "- Points scanned: {} ({} text fields classified, {} decided by valid stamps, {} unscanned)",
            t.points, t.chunks, t.trusted_stamps, t.unscanned
        );
        let _ = writeln!(
            m,
            "- Stamps written: {} (unchanged: {}); moved to quarantine: {}",
            t.stamps_written, t.stamps_unchanged, t.moved
        );
        let _ = writeln!(
            m,
            "- Throughput: {:.1} points/s, {:.1} chunks/s over {:.1} s in {} batches\n",
            self.throughput.points_per_sec,
            self.throughput.chunks_per_sec,
            t.busy_seconds,
            t.batches
        );

        let _ = writeln!(m, "## Actions\n\n| action | points |\n|---|---:|");
        for a in Action::ALL {
            let _ = writeln!(m, "| {a} | {} |", t.count(a));
        }
        if !t.reasons.is_empty() {
            let _ = writeln!(
                m,
                "\n## Actions by reason\n\n| reason | allow | tag | quarantine | block |\n|---|---:|---:|---:|---:|"
            );
            for (code_, by) in &t.reasons {
                let n = |a: Action| by.get(&a).copied().unwrap_or(0);
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {} |",
                    code(code_),
                    n(Action::Allow),
                    n(Action::Tag),
                    n(Action::Quarantine),
                    n(Action::Block)
                );
            }
        }
        let _ = writeln!(
            m,
            "\n## Score histogram\n\n| score | points | |\n|---|---:|---|"
        );
        let max = t.histogram.iter().copied().max().unwrap_or(0).max(1);
        for (i, n) in t.histogram.iter().enumerate() {
            let bar = "#".repeat(((*n * 40).div_ceil(max)) as usize);
            let hi = if i + 1 == HISTOGRAM_BUCKETS { "]" } else { ")" };
            let _ = writeln!(
                m,
                "| [{:.1}, {:.1}{hi} | {n} | {bar} |",
                i as f64 / 10.0,
                (i + 1) as f64 / 10.0
            );
        }
        if !t.slowest.is_empty() {
            let _ = writeln!(
                m,
                "\n## Slowest batches\n\n| batch | first id | points | seconds | classifying |\n|---:|---|---:|---:|---:|"
            );
            for b in &t.slowest {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {:.3} | {:.3} |",
                    b.batch,
                    code(&b.first_id.to_string()),
                    b.points,
                    b.seconds,
                    b.classify_seconds
                );
            }
        }
        if !t.flagged.is_empty() {
            let _ = writeln!(
                m,
                "\n## Flagged points\n\n| id | action | score | reasons |\n|---|---|---:|---|"
            );
            for f in &t.flagged {
                let reasons: Vec<String> = f.reasons.iter().map(|r| code(r)).collect();
                let _ = writeln!(
                    m,
                    "| {} | {} | {:.3} | {} |",
                    code(&f.id.to_string()),
                    f.action,
                    f.score,
                    reasons.join(", ")
                );
            }
            let listed = t.flagged.len() as u64;
            let total = t.count(Action::Quarantine) + t.count(Action::Block);
            if total > listed {
                let _ = writeln!(m, "\n({} more not listed)", total - listed);
            }
        }
        if !t.errors.is_empty() {
            let _ = writeln!(
                m,
                "\n## Not scanned\n\n| id | kind | message |\n|---|---|---|"
            );
            for e in &t.errors {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} |",
                    code(&e.id.to_string()),
                    e.kind,
                    e.message.replace('|', "\\|").replace('\n', " ")
                );
            }
        }
        m
    }
}

/// Inline code that cannot be broken out of (backticks and pipes replaced).
fn code(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '|' => '¦',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    format!("`{clean}`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tally() -> Tally {
        let mut t = Tally::default();
        let reasons = vec!["score".to_owned(), "rule.override".to_owned()];
        let ids = [json!(1), json!(2), json!("u-3")];
        t.record(&Outcome {
            id: &ids[0],
            action: Action::Allow,
            score: 0.02,
            reasons: &[],
            trusted_stamp: false,
            chunks: 2,
        });
        t.record(&Outcome {
            id: &ids[1],
            action: Action::Quarantine,
            score: 1.0,
            reasons: &reasons,
            trusted_stamp: false,
            chunks: 1,
        });
        t.record(&Outcome {
            id: &ids[2],
            action: Action::Tag,
            score: 0.45,
            reasons: &reasons[..1],
            trusted_stamp: true,
            chunks: 0,
        });
        t.error(&json!(4), "no_text_fields", "no text".into());
        for (i, s) in [0.5, 2.0, 0.1, 1.0, 3.0, 0.2].iter().enumerate() {
            t.batch(BatchTime {
                batch: 0,
                first_id: json!(i),
                points: 2,
                seconds: *s,
                classify_seconds: s / 2.0,
            });
        }
        t
    }

    #[test]
    fn tally_counts_actions_reasons_and_histogram() {
        let t = tally();
        assert_eq!(
            (t.points, t.chunks, t.trusted_stamps, t.unscanned),
            (3, 3, 1, 1)
        );
        assert_eq!(t.count(Action::Quarantine), 1);
        assert_eq!(t.reasons["score"][&Action::Tag], 1);
        assert_eq!(t.reasons["score"][&Action::Quarantine], 1);
        assert_eq!(t.reasons["rule.override"].len(), 1);
        assert_eq!(t.histogram[0], 1);
        assert_eq!(t.histogram[4], 1);
        assert_eq!(t.histogram[9], 1, "a score of 1.0 is in the last bucket");
        assert_eq!(t.flagged.len(), 1);
        assert_eq!(t.flagged[0].id, json!(2));
        let slow: Vec<u64> = t.slowest.iter().map(|b| b.batch).collect();
        assert_eq!(slow, [5, 2, 4, 1, 6], "slowest first, numbered in order");
        assert_eq!(t.batches, 6);
        assert!((t.busy_seconds - 6.8).abs() < 1e-9);
    }

    #[test]
    fn tally_survives_the_checkpoint_format() {
        let t = tally();
        let back: Tally =
            serde_json::from_str(&serde_json::to_string(&t).expect("ser")).expect("de");
        assert_eq!(back, t);
    }

    #[test]
    fn report_renders_json_and_markdown() {
        let source = Source::Qdrant {
            url: "http://q:6334".into(),
            collection: "docs|`x`".into(),
        };
        let r = Report::new(source, "stamp", true, "onnx:abc+rules:core", "p1", tally());
        let v: serde_json::Value = serde_json::from_str(&r.json()).expect("json");
        assert_eq!(v["source"]["kind"], "qdrant");
        assert_eq!(v["tally"]["actions"]["quarantine"], 1);
        assert_eq!(v["tally"]["histogram"].as_array().map(Vec::len), Some(10));
        assert!(
            (v["throughput"]["points_per_sec"].as_f64().expect("f64") - 3.0 / 6.8).abs() < 1e-9
        );
        let md = r.markdown();
        assert!(md.contains("collection `docs¦'x'`"), "{md}");
        assert!(md.contains("| quarantine | 1 |"));
        assert!(md.contains("| `score` | 0 | 1 | 1 | 0 |"), "{md}");
        assert!(md.contains("## Slowest batches"));
        assert!(md.contains("| [0.9, 1.0] | 1 |"));
        assert!(md.contains("no_text_fields"));
    }
}
