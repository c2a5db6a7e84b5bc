//! Ingestion scanning of upserts: reject, tag (signed stamps), quarantine-collection.

use serde_json::{Value, json};

use ragwall::proxy::IngestPolicy;
use ragwall::stamp::{Expected, Stamp, StampKey, content_sha256};

use super::{Exchange, Replayer, client, config, exchange, exchanges, firewall, send, start_proxy};

const KEY: &[u8] = b"ingest-stamp-key-0123456789abcdef-012345";

fn ids(body: &[u8]) -> Vec<Value> {
    let v: Value = serde_json::from_slice(body).expect("json");
    v["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| p["id"].clone())
        .collect()
}

/// The recording plus catch-all answers for rewritten upserts.
fn with_catch_all() -> Vec<Exchange> {
    let ok = exchange("upsert");
    let mut all = exchanges();
    for path in [
        "/collections/docs/points?wait=true",
        "/collections/docs_ragwall_quarantine/points?wait=true",
    ] {
        all.push(Exchange {
            name: format!("catch-all {path}"),
            path: path.into(),
            request: json!({}),
            ..ok.clone()
        });
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_writes_nothing() {
    let up = Replayer::with(with_catch_all()).await;
    let mut cfg = config(&up.url());
    cfg.proxy.ingest.policy = IngestPolicy::Reject;
    let proxy = start_proxy(&cfg, firewall()).await;
    let resp = send(&client(), &proxy, &exchange("upsert")).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["x-ragwall-error"], "ingest_rejected");
    let v: Value = resp.json().await.expect("json");
    assert!(
        v["status"]["error"]
            .as_str()
            .expect("qdrant shape")
            .contains("rejected")
    );
    assert!(up.seen().is_empty(), "nothing reached Qdrant");
    // Clean writes go through.
    let mut clean = exchange("upsert");
    clean.request["points"] = json!([clean.request["points"][0].clone()]);
    let resp = send(&client(), &proxy, &clean).await;
    assert_eq!(resp.status(), 200);
    // set_payload is scanned too.
    let resp = send(&client(), &proxy, &exchange("set_payload")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_writes_signed_stamps_that_reads_trust() {
    let up = Replayer::with(with_catch_all()).await;
    let dir = std::env::temp_dir().join(format!("ragwall-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("key"), KEY).expect("write");
    let mut cfg = config(&up.url());
    cfg.proxy.ingest.policy = IngestPolicy::Tag;
    cfg.proxy.stamp_key_file = Some(dir.join("key"));
    let fw = firewall();
    let proxy = start_proxy(&cfg, fw.clone()).await;
    let resp = send(&client(), &proxy, &exchange("upsert")).await;
    assert_eq!(resp.status(), 200);
    let seen = up.seen();
    let written: Value = serde_json::from_slice(&seen[0].body).expect("json");
    let key = StampKey::new(KEY, "t").expect("key");
    for p in written["points"].as_array().expect("points") {
        let mut payload = p["payload"].as_object().expect("payload").clone();
        let stamp =
            Stamp::from_value(&payload.shift_remove("ragwall").expect("stamped")).expect("a stamp");
        let fields: Vec<(String, String)> = payload
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect();
        if p["id"] != 6 {
            let sha = content_sha256(fields.iter().map(|(a, b)| (a.as_str(), b.as_str())));
            let expected = Expected {
                sha256: &sha,
                detector: fw.detector_id(),
                policy: "default-1",
                collection: "docs",
            };
            assert_eq!(stamp.verify(&key, expected), Ok(()), "{p}");
        }
        let flagged = !stamp.action.passes();
        match p["id"].as_u64() {
            Some(3..=5) => assert!(flagged, "{p}"),
            Some(1 | 2 | 6) => assert!(!flagged, "{p}"),
            _ => {}
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_collection_moves_flagged_points() {
    let up = Replayer::with(with_catch_all()).await;
    let mut cfg = config(&up.url());
    cfg.proxy.ingest.policy = IngestPolicy::QuarantineCollection;
    let proxy = start_proxy(&cfg, firewall()).await;
    let resp = send(&client(), &proxy, &exchange("upsert")).await;
    assert_eq!(resp.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(
        seen[0].path_and_query,
        "/collections/docs_ragwall_quarantine/points?wait=true"
    );
    let moved = ids(&seen[0].body);
    for id in [3, 4, 5] {
        assert!(moved.contains(&id.into()), "{moved:?}");
    }
    assert_eq!(seen[1].path_and_query, "/collections/docs/points?wait=true");
    let kept = ids(&seen[1].body);
    for id in [1, 2, 6] {
        assert!(kept.contains(&id.into()), "{kept:?}");
    }
    assert_eq!(moved.len() + kept.len(), 7);
    let v: Value = serde_json::from_slice(&seen[0].body).expect("json");
    assert!(
        v["points"][0]["vector"].is_array(),
        "whole points are moved: {v}"
    );
}
