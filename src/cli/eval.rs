//! `ragwall eval`: detection quality on labelled JSONL, as a table for people or `--json` for
//! machines, and an optional gate (floors for recall, ceilings for FPR) for CI.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::jsonl;
use crate::chunk::{Chunk, ChunkId};
use crate::eval::{Metrics, Scored, metrics};
use crate::firewall::Firewall;
use crate::policy::Action;

/// One labelled example. Every other string field ("source", "kind", "genre", "category",
/// "language", "split", …) is kept, so reports can be grouped by any of them.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub text: String,
    #[serde(deserialize_with = "label")]
    pub label: bool,
    #[serde(default)]
    pub collection: Option<String>,
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl Example {
    /// The example's value for a grouping field, when it has a scalar one.
    fn field(&self, name: &str) -> Option<String> {
        match self.fields.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

fn label<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
        serde_json::Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
        other => Err(serde::de::Error::custom(format!(
            "label must be 0, 1, true or false, not {other}"
        ))),
    }
}

/// What to measure and how to slice it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Fields to group by (each gives one table section).
    pub by: Vec<String>,
    /// Only examples whose field equals the value (all must hold), e.g. `split=test`.
    pub filters: Vec<(String, String)>,
    /// Examples per firewall call.
    pub batch: usize,
}

/// The full report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data: String,
    pub detector: String,
    pub policy_version: String,
    /// Quarantine threshold of the default policy (the calibrated one unless overridden).
    pub quarantine_threshold: Option<f32>,
    /// Tag threshold of the default policy.
    pub tag_threshold: Option<f32>,
    pub overall: Metrics,
    /// Field name → field value → metrics of the examples with that value.
    pub groups: BTreeMap<String, BTreeMap<String, Metrics>>,
    pub seconds: f64,
    pub chunks_per_second: f64,
    /// Lines that could not be read (counted, never silently skipped).
    pub invalid_lines: usize,
    /// Examples left out by the filters.
    pub filtered_out: usize,
}

/// One example's outcome, as written by `--scores` (for calibration and error analysis).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub line: usize,
    pub label: bool,
    pub score: f32,
    pub action: Action,
    /// Stable reason codes of the verdict.
    pub reasons: Vec<String>,
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// Floors and ceilings that must hold; any group may be given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    #[serde(default)]
    pub overall: Bounds,
    /// `[sources.NAME]`: shorthand for `[groups.source.NAME]`.
    #[serde(default)]
    pub sources: BTreeMap<String, Bounds>,
    /// `[kinds.NAME]`: shorthand for `[groups.kind.NAME]`.
    #[serde(default)]
    pub kinds: BTreeMap<String, Bounds>,
    /// `[groups.FIELD.VALUE]`, e.g. `[groups.language.ja]`.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeMap<String, Bounds>>,
}

impl Gate {
    /// Every (field, value, bounds) the gate names.
    fn entries(&self) -> Vec<(&str, &str, &Bounds)> {
        let mut out: Vec<(&str, &str, &Bounds)> = Vec::new();
        out.extend(self.sources.iter().map(|(k, b)| ("source", k.as_str(), b)));
        out.extend(self.kinds.iter().map(|(k, b)| ("kind", k.as_str(), b)));
        for (field, values) in &self.groups {
            out.extend(values.iter().map(|(k, b)| (field.as_str(), k.as_str(), b)));
        }
        out
    }

    /// Fields the gate needs grouped.
    pub fn fields(&self) -> Vec<String> {
        let mut f: Vec<String> = self.entries().iter().map(|e| e.0.to_owned()).collect();
        f.sort();
        f.dedup();
        f
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    pub min_recall: Option<f64>,
    /// Floor on the share of attacks tagged or worse.
    pub min_tag_recall: Option<f64>,
    pub max_fpr: Option<f64>,
    /// Ceiling on the share of benign examples tagged or worse.
    pub max_tag_fpr: Option<f64>,
    pub min_accuracy: Option<f64>,
    pub min_roc_auc: Option<f64>,
}

/// Runs the firewall over every example; `scores` receives one JSON line per example.
pub fn run(
    fw: &Firewall,
    input: impl BufRead,
    data_name: &str,
    opts: &Options,
    mut scores: Option<&mut dyn Write>,
) -> std::io::Result<Report> {
    let started = Instant::now();
    let mut items: Vec<(Scored, Vec<Option<String>>)> = Vec::new();
    let mut invalid = 0usize;
    let mut filtered_out = 0usize;
    let mut examples: Vec<(usize, Example)> = Vec::new();
    let mut flush = |examples: &mut Vec<(usize, Example)>,
                     items: &mut Vec<(Scored, Vec<Option<String>>)>|
     -> std::io::Result<()> {
        let chunks: Vec<Chunk> = examples
            .iter()
            .enumerate()
            .map(|(i, (_, e))| Chunk {
                collection: e.collection.clone(),
                ..Chunk::new(ChunkId::from(i as u64), e.text.clone())
            })
            .collect();
        let verdicts = fw
            .inspect(&chunks)
            .map_err(|e| std::io::Error::other(format!("evaluation cannot continue: {e}")))?;
        for ((line, e), v) in examples.drain(..).zip(verdicts) {
            let keys = opts.by.iter().map(|f| e.field(f)).collect();
            items.push((
                Scored {
                    score: v.score,
                    flagged: v.action >= Action::Quarantine,
                    tagged: v.action >= Action::Tag,
                    label: e.label,
                },
                keys,
            ));
            if let Some(w) = scores.as_mut() {
                let out = Outcome {
                    line,
                    label: e.label,
                    score: v.score,
                    action: v.action,
                    reasons: v.reasons.iter().map(|r| r.code.to_string()).collect(),
                    fields: e.fields,
                };
                serde_json::to_writer(&mut **w, &out)?;
                w.write_all(b"\n")?;
            }
        }
        Ok(())
    };
    for line in jsonl::lines::<Example>(input, "an example ({\"text\":…,\"label\":0|1})") {
        let line = line?;
        match line.record {
            Ok(e) => {
                if opts
                    .filters
                    .iter()
                    .all(|(k, v)| e.field(k).as_deref() == Some(v.as_str()))
                {
                    examples.push((line.number, e));
                } else {
                    filtered_out += 1;
                }
            }
            Err(err) => {
                invalid += 1;
                tracing::warn!(line = line.number, error = %err.message, "invalid example");
            }
        }
        if examples.len() >= opts.batch.max(1) {
            flush(&mut examples, &mut items)?;
        }
    }
    flush(&mut examples, &mut items)?;
    let seconds = started.elapsed().as_secs_f64();
    let mut groups = BTreeMap::new();
    for (fi, field) in opts.by.iter().enumerate() {
        let mut m: BTreeMap<String, Vec<Scored>> = BTreeMap::new();
        for (s, keys) in &items {
            if let Some(k) = &keys[fi] {
                m.entry(k.clone()).or_default().push(*s);
            }
        }
        groups.insert(
            field.clone(),
            m.into_iter().map(|(k, v)| (k, metrics(&v))).collect(),
        );
    }
    let all: Vec<Scored> = items.iter().map(|i| i.0).collect();
    let policy = fw.policy().for_collection(None);
    Ok(Report {
        data: data_name.to_owned(),
        detector: fw.detector_id().to_owned(),
        policy_version: fw.policy().version.clone(),
        quarantine_threshold: policy.quarantine,
        tag_threshold: policy.tag,
        overall: metrics(&all),
        groups,
        seconds,
        chunks_per_second: all.len() as f64 / seconds.max(1e-9),
        invalid_lines: invalid,
        filtered_out,
    })
}

/// Every bound the report violates, as human-readable lines.
pub fn check(report: &Report, gate: &Gate) -> Vec<String> {
    let mut out = Vec::new();
    let mut one = |scope: &str, m: Option<&Metrics>, b: &Bounds| {
        let Some(m) = m else {
            out.push(format!("{scope}: no examples in the data"));
            return;
        };
        let mut cmp = |what: &str, got: Option<f64>, bound: Option<f64>, min: bool| {
            if let Some(bound) = bound {
                match got {
                    Some(g) if (min && g + 1e-12 >= bound) || (!min && g <= bound + 1e-12) => {}
                    Some(g) => out.push(format!(
                        "{scope}: {what} {g:.4} is {} {bound:.4}",
                        if min { "below" } else { "above" }
                    )),
                    None => out.push(format!(
                        "{scope}: {what} undefined (no examples of that class)"
                    )),
                }
            }
        };
        cmp("recall", m.recall, b.min_recall, true);
        cmp("tagged recall", m.tag_recall, b.min_tag_recall, true);
        cmp("FPR", m.fpr, b.max_fpr, false);
        cmp("tagged FPR", m.tag_fpr, b.max_tag_fpr, false);
        cmp("accuracy", Some(m.accuracy), b.min_accuracy, true);
        cmp("ROC-AUC", m.roc_auc, b.min_roc_auc, true);
    };
    one("overall", Some(&report.overall), &gate.overall);
    for (field, value, b) in gate.entries() {
        let m = report.groups.get(field).and_then(|g| g.get(value));
        one(&format!("{field} {value}"), m, b);
    }
    out
}

/// Loads a gate file.
pub fn load_gate(path: &Path) -> anyhow::Result<Gate> {
    let text = std::fs::read_to_string(path)?;
    Ok(toml::from_str(&text)?)
}

/// The table for people.
pub fn table(r: &Report) -> String {
    let pct = |x: Option<f64>| x.map_or("   -  ".to_owned(), |v| format!("{:6.2}", v * 100.0));
    let row = |name: &str, m: &Metrics| {
        format!(
            "{name:<40.40} {:>6} {:>5} {:>5} {} {} {} {} {} {} {} {} {}\n",
            m.n,
            m.positives,
            m.negatives,
            pct(m.precision),
            pct(m.recall),
            pct(m.f1),
            pct(m.fpr),
            pct(m.tag_recall),
            pct(m.tag_fpr),
            pct(Some(m.accuracy)),
            pct(m.roc_auc),
            pct(m.recall_at_1pct_fpr),
        )
    };
    let header = format!(
        "{:<40} {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}\n",
        "group",
        "n",
        "pos",
        "neg",
        "prec%",
        "rec%",
        "F1%",
        "FPR%",
        "tagR%",
        "tagF%",
        "acc%",
        "AUC%",
        "R@1%"
    );
    let mut s = format!(
        "ragwall eval: {}\ndetector: {}\npolicy: {} (quarantine threshold {}, tag threshold {})\n\
         rec/FPR: quarantined or blocked; tagR/tagF: tagged or worse\n\n{header}",
        r.data,
        r.detector,
        r.policy_version,
        r.quarantine_threshold
            .map_or("off".into(), |t| format!("{t:.4}")),
        r.tag_threshold.map_or("off".into(), |t| format!("{t:.4}"))
    );
    s.push_str(&row("overall", &r.overall));
    for (title, groups) in &r.groups {
        if !groups.is_empty() {
            s.push_str(&format!("-- by {title}\n"));
            for (k, m) in groups {
                s.push_str(&row(k, m));
            }
        }
    }
    s.push_str(&format!(
        "\nthreshold for 1% FPR on this data: {}\nthroughput: {:.1} chunks/s ({} chunks in {:.2} s)\n",
        r.overall.threshold_at_1pct_fpr.map_or("-".into(), |t| format!("{t:.4}")),
        r.chunks_per_second,
        r.overall.n,
        r.seconds
    ));
    if r.filtered_out > 0 {
        s.push_str(&format!("left out by filters: {}\n", r.filtered_out));
    }
    if r.invalid_lines > 0 {
        s.push_str(&format!("invalid lines: {}\n", r.invalid_lines));
    }
    s
}
