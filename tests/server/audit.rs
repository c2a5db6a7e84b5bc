//! The audit log: what is written, the hash chain, and failing closed when it cannot be written.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{BENIGN, INJECTION, config, metric, start, temp_dir};
use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_non_allow_decision_is_chained_in_the_audit_log() {
    let dir = temp_dir("audit");
    let path = dir.join("audit.jsonl");
    let mut cfg = config();
    cfg.server.audit_log = Some(path.clone());
    cfg.limits.max_chunk_bytes = 1024;
    let srv = start(cfg).await;
    let big = "q".repeat(2000);
    let r = srv
        .post(
            "/v1/scan",
            &json!({"collection": "kb", "chunks": [
                {"id": 1, "text": BENIGN},
                {"id": "inj", "text": INJECTION},
                {"id": 3, "text": big},
            ]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let scan_rid = r.headers()["x-request-id"].to_str().expect("id").to_owned();
    let r = srv
        .post(
            "/v1/guard",
            &json!({"chunks": [{"id": 9, "text": INJECTION}, {"id": 10, "text": BENIGN}]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let guard_rid = r.headers()["x-request-id"].to_str().expect("id").to_owned();

    let text = std::fs::read_to_string(&path).expect("audit log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "two non-allow in scan, one in guard; allows are not logged:\n{text}"
    );
    let recs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let model = common::detectors()
        .classifier
        .expect("classifier")
        .manifest()
        .model_sha256()
        .to_owned();

    assert_eq!(recs[0]["seq"], 1);
    assert_eq!(recs[0]["prev"], "0".repeat(64));
    assert_eq!(recs[0]["request_id"], scan_rid.as_str());
    assert_eq!(recs[0]["route"], "/v1/scan");
    assert_eq!(recs[0]["collection"], "kb");
    assert_eq!(recs[0]["chunk_id"], "inj");
    assert_eq!(
        recs[0]["chunk_sha256"],
        hex::encode(Sha256::digest(INJECTION))
    );
    assert_eq!(recs[0]["model_sha256"], model.as_str());
    assert_eq!(recs[0]["policy_version"], "default-1");
    assert_eq!(recs[0]["action"], "quarantine");
    assert_eq!(recs[0]["scanned"], true);
    assert!(recs[0]["score"].as_f64().expect("score") > 0.5);
    assert!(
        recs[0]["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .all(|r| r.is_string())
    );
    assert!(recs[0]["time"].as_str().expect("time").ends_with('Z'));

    assert_eq!(recs[1]["chunk_id"], 3);
    assert_eq!(recs[1]["scanned"], false);
    assert_eq!(recs[1]["action"], "block");
    assert_eq!(recs[1]["reasons"], json!(["limit.chunk_bytes"]));
    assert_eq!(recs[2]["request_id"], guard_rid.as_str());
    assert_eq!(recs[2]["route"], "/v1/guard");
    for i in 1..3 {
        assert_eq!(recs[i]["seq"], i as u64 + 1);
        assert_eq!(
            recs[i]["prev"],
            hex::encode(Sha256::digest(lines[i - 1])),
            "line {i} chains"
        );
    }
    assert!(
        !text.contains("Ignore all previous"),
        "no chunk text in the audit log"
    );

    let report = ragwall::server::audit::verify(&path).expect("verifies");
    assert_eq!(report.lines, 3);
    assert_eq!(
        report.head,
        srv.app.audit().expect("audit").head().expect("head")
    );
    assert_eq!(
        metric(&srv.metrics().await, "ragwall_audit_lines_total"),
        Some(3.0)
    );
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_that_cannot_be_audited_is_not_returned() {
    // /dev/full accepts the open and fails every write (ENOSPC): a real I/O failure.
    let mut cfg = config();
    cfg.server.audit_log = Some("/dev/full".into());
    let srv = start(cfg).await;
    let r = srv
        .post(
            "/v1/scan",
            &json!({"chunks": [{"id": 1, "text": INJECTION}]}),
        )
        .await;
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["kind"], "audit_failed");
    assert!(v.get("verdicts").is_none());
    assert!(
        !v["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("/dev/full"),
        "server-side detail stays in the log"
    );
    // Nothing to audit, nothing to fail.
    let r = srv
        .post("/v1/scan", &json!({"chunks": [{"id": 2, "text": BENIGN}]}))
        .await;
    assert_eq!(r.status(), 200);
}
