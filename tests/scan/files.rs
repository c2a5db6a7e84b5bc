//! `ragwall scan files`: the ingestion gate.

use std::sync::atomic::AtomicBool;

use serde_json::Value;

use ragwall::scan::{FilesJob, exit_status, scan_files};

use super::{OVERRIDE, config, hidden, scanner};
use crate::common::json_lines;

#[test]
fn the_files_gate_splits_clean_and_quarantined_records() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let input = dir.path().join("in");
    std::fs::create_dir(&input).expect("mkdir");
    let jsonl = format!(
        "{}\n{}\n\n{}\n",
        serde_json::json!({"id": "a", "text": "Refunds are processed within five business days.", "tags": ["billing"]}),
        serde_json::json!({"id": "b", "text": OVERRIDE}),
        serde_json::json!({"text": "Our office is closed on public holidays.", "meta": {"lang": "en"}}),
    );
    std::fs::write(input.join("chunks.jsonl"), &jsonl).expect("w");
    std::fs::write(
        input.join("policy.md"),
        format!("# Shipping\n\n{}\n", hidden()),
    )
    .expect("w");
    std::fs::write(
        input.join("notes.txt"),
        "The quarterly report shows revenue growth.\n",
    )
    .expect("w");
    let job = FilesJob {
        paths: vec![input.clone()],
        out: dir.path().join("clean.jsonl"),
        quarantine: dir.path().join("quarantine.jsonl"),
        report: Some(dir.path().join("report.json")),
        progress: false,
    };
    let report =
        scan_files(&scanner(&cfg), &cfg.scan, &job, &AtomicBool::new(false)).expect("scan");
    assert!(report.complete);
    assert_eq!(exit_status(&report), 0);
    assert_eq!((report.tally.points, report.tally.moved), (5, 2));

    let clean = json_lines(&std::fs::read(&job.out).expect("clean"));
    let lines: Vec<&str> = jsonl.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(clean.len(), 3, "{clean:?}");
    assert_eq!(
        clean[0],
        serde_json::from_str::<Value>(lines[0]).expect("json"),
        "JSONL kept verbatim"
    );
    assert_eq!(
        clean[1],
        serde_json::from_str::<Value>(lines[2]).expect("json")
    );
    assert_eq!(
        clean[2]["text"],
        "The quarterly report shows revenue growth.\n"
    );
    assert!(
        clean[2]["source"]
            .as_str()
            .expect("source")
            .ends_with("notes.txt")
    );

    let q = json_lines(&std::fs::read(&job.quarantine).expect("quarantine"));
    assert_eq!(q.len(), 2);
    assert_eq!(q[0]["id"], "b");
    assert_eq!(q[0]["line"], 2);
    assert_eq!(q[0]["record"]["text"], OVERRIDE);
    assert!(
        q[1]["source"]
            .as_str()
            .expect("source")
            .ends_with("policy.md")
    );
    assert!(
        q[1]["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r == "finding.tag_characters"),
        "{}",
        q[1]
    );
    for l in &q {
        assert!(
            matches!(l["action"].as_str(), Some("quarantine" | "block")),
            "{l}"
        );
    }
    let r: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).expect("report"))
            .expect("json");
    assert_eq!(r["source"]["kind"], "files");
    assert_eq!(r["tally"]["moved"], 2);
}
