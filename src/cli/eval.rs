//! `ragwall eval`: detection quality on labelled JSONL, as a table for people or `--json` for
//! machines, and an optional gate (floors for recall, ceilings for FPR) for CI.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::jsonl;
use crate::chunk::{Chunk, ChunkId};
use crate::eval::{Metrics, Scored, metrics};
use crate::firewall::Firewall;
use crate::policy::Action;

/// One labelled example.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub text: String,
    #[serde(deserialize_with = "label")]
    pub label: bool,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub collection: Option<String>,
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

/// The full report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data: String,
    pub detector: String,
    pub policy_version: String,
    /// Quarantine threshold of the default policy (the calibrated one unless overridden).
    pub quarantine_threshold: Option<f32>,
    pub overall: Metrics,
    pub by_source: BTreeMap<String, Metrics>,
    pub by_kind: BTreeMap<String, Metrics>,
    pub seconds: f64,
    pub chunks_per_second: f64,
    /// Lines that could not be read (counted, never silently skipped).
    pub invalid_lines: usize,
}

/// Floors and ceilings that must hold; any group may be given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    #[serde(default)]
    pub overall: Bounds,
    #[serde(default)]
    pub sources: BTreeMap<String, Bounds>,
    #[serde(default)]
    pub kinds: BTreeMap<String, Bounds>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    pub min_recall: Option<f64>,
    pub max_fpr: Option<f64>,
    pub min_accuracy: Option<f64>,
    pub min_roc_auc: Option<f64>,
}

/// A scored example with its source and kind.
type Item = (Scored, Option<String>, Option<String>);

/// Runs the firewall over every example.
pub fn run(
    fw: &Firewall,
    input: impl BufRead,
    data_name: &str,
    batch: usize,
) -> std::io::Result<Report> {
    let started = Instant::now();
    let mut items: Vec<Item> = Vec::new();
    let mut invalid = 0usize;
    let mut examples: Vec<Example> = Vec::new();
    let flush = |examples: &mut Vec<Example>, items: &mut Vec<_>| -> std::io::Result<()> {
        let chunks: Vec<Chunk> = examples
            .iter()
            .enumerate()
            .map(|(i, e)| Chunk {
                collection: e.collection.clone(),
                ..Chunk::new(ChunkId::from(i as u64), e.text.clone())
            })
            .collect();
        let verdicts = fw
            .inspect(&chunks)
            .map_err(|e| std::io::Error::other(format!("evaluation cannot continue: {e}")))?;
        for (e, v) in examples.drain(..).zip(verdicts) {
            items.push((
                Scored {
                    score: v.score,
                    flagged: v.action >= Action::Quarantine,
                    label: e.label,
                },
                e.source,
                e.kind,
            ));
        }
        Ok(())
    };
    for line in jsonl::lines::<Example>(input, "an example ({\"text\":…,\"label\":0|1})") {
        let line = line?;
        match line.record {
            Ok(e) => examples.push(e),
            Err(err) => {
                invalid += 1;
                tracing::warn!(line = line.number, error = %err.message, "invalid example");
            }
        }
        if examples.len() >= batch.max(1) {
            flush(&mut examples, &mut items)?;
        }
    }
    flush(&mut examples, &mut items)?;
    let seconds = started.elapsed().as_secs_f64();
    let group = |key: fn(&Item) -> Option<&String>| {
        let mut m: BTreeMap<String, Vec<Scored>> = BTreeMap::new();
        for it in &items {
            if let Some(k) = key(it) {
                m.entry(k.clone()).or_default().push(it.0);
            }
        }
        m.into_iter().map(|(k, v)| (k, metrics(&v))).collect()
    };
    let all: Vec<Scored> = items.iter().map(|i| i.0).collect();
    Ok(Report {
        data: data_name.to_owned(),
        detector: fw.detector_id().to_owned(),
        policy_version: fw.policy().version.clone(),
        quarantine_threshold: fw.policy().for_collection(None).quarantine,
        overall: metrics(&all),
        by_source: group(|i| i.1.as_ref()),
        by_kind: group(|i| i.2.as_ref()),
        seconds,
        chunks_per_second: all.len() as f64 / seconds.max(1e-9),
        invalid_lines: invalid,
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
        cmp("FPR", m.fpr, b.max_fpr, false);
        cmp("accuracy", Some(m.accuracy), b.min_accuracy, true);
        cmp("ROC-AUC", m.roc_auc, b.min_roc_auc, true);
    };
    one("overall", Some(&report.overall), &gate.overall);
    for (k, b) in &gate.sources {
        one(&format!("source {k}"), report.by_source.get(k), b);
    }
    for (k, b) in &gate.kinds {
        one(&format!("kind {k}"), report.by_kind.get(k), b);
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
            "{name:<40.40} {:>6} {:>5} {:>5} {} {} {} {} {} {} {}\n",
            m.n,
            m.positives,
            m.negatives,
            pct(m.precision),
            pct(m.recall),
            pct(m.f1),
            pct(m.fpr),
            pct(Some(m.accuracy)),
            pct(m.roc_auc),
            pct(m.recall_at_1pct_fpr),
        )
    };
    let header = format!(
        "{:<40} {:>6} {:>5} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}\n",
        "group", "n", "pos", "neg", "prec%", "rec%", "F1%", "FPR%", "acc%", "AUC%", "R@1%"
    );
    let mut s = format!(
        "ragwall eval: {}\ndetector: {}\npolicy: {} (quarantine threshold {})\n\n{header}",
        r.data,
        r.detector,
        r.policy_version,
        r.quarantine_threshold
            .map_or("off".into(), |t| format!("{t:.4}"))
    );
    s.push_str(&row("overall", &r.overall));
    for (title, groups) in [("source", &r.by_source), ("kind", &r.by_kind)] {
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
    if r.invalid_lines > 0 {
        s.push_str(&format!("invalid lines: {}\n", r.invalid_lines));
    }
    s
}
