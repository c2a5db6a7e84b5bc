//! Every way a request can be wrong gets its own status and a JSON error body, and nothing is
//! ever returned as scanned when it was not.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{BENIGN, Server, chunks, cold_texts, config, start, start_with};

/// Sends raw bytes to `path` and returns (status, headers' request id, JSON body).
async fn raw(srv: &Server, path: &str, content_type: &str, body: Vec<u8>) -> (u16, String, Value) {
    let res = srv
        .client
        .post(srv.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("answered");
    let status = res.status().as_u16();
    let rid = res.headers()["x-request-id"]
        .to_str()
        .expect("id")
        .to_owned();
    let body: Value = res.json().await.expect("error bodies are JSON");
    (status, rid, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_distinct_statuses_and_json_bodies() {
    let mut cfg = config();
    cfg.server.max_body_bytes = 4096;
    cfg.limits.max_chunks_per_call = 3;
    let srv = start(cfg).await;
    const JSON: &str = "application/json";
    let too_many = serde_json::to_vec(&chunks(&cold_texts("many", 4, 3))).expect("json");
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("malformed_json", JSON, b"{\"chunks\": [".to_vec(), 400),
        (
            "invalid_request",
            JSON,
            br#"{"chunks": [{"id": 1, "text": 42}]}"#.to_vec(),
            422,
        ),
        (
            "invalid_utf8",
            JSON,
            b"{\"chunks\": [{\"id\": 1, \"text\": \"\xff\xfe\"}]}".to_vec(),
            415,
        ),
        (
            "body_too_large",
            JSON,
            serde_json::to_vec(&json!({"chunks": [{"id": 1, "text": "z".repeat(5000)}]}))
                .expect("json"),
            413,
        ),
        ("too_many_chunks", JSON, too_many, 431),
        (
            "unsupported_media_type",
            "text/plain",
            br#"{"chunks": []}"#.to_vec(),
            415,
        ),
        (
            "invalid_request",
            JSON,
            br#"{"chunks": [], "unknown": true}"#.to_vec(),
            422,
        ),
        (
            "invalid_request",
            JSON,
            br#"{"chunks": [{"text": "no id"}]}"#.to_vec(),
            422,
        ),
    ];
    let mut statuses = BTreeSet::new();
    for path in ["/v1/scan", "/v1/guard"] {
        for (kind, ct, body, status) in &cases {
            let (got, rid, v) = raw(&srv, path, ct, body.clone()).await;
            assert_eq!(got, *status, "{path} {kind}: {v}");
            assert_eq!(v["error"]["kind"], *kind, "{path}: {v}");
            assert_eq!(v["error"]["request_id"], rid.as_str());
            assert!(
                v["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty())
            );
            assert!(v.get("verdicts").is_none() && v.get("context").is_none());
            if *ct == JSON {
                statuses.insert((*kind, got));
            }
        }
    }
    let codes: BTreeSet<u16> = statuses.iter().map(|(_, s)| *s).collect();
    let kinds: BTreeSet<&str> = statuses.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        codes.len(),
        kinds.len(),
        "one status per kind: {statuses:?}"
    );

    // Unknown routes and methods answer JSON too.
    let r = srv.get("/v2/scan").await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["kind"],
        "not_found"
    );
    let r = srv.get("/v1/scan").await;
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["kind"],
        "method_not_allowed"
    );

    // A request within limits still works after all that.
    let r = srv
        .post("/v1/scan", &json!({"chunks": [{"id": 1, "text": BENIGN}]}))
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_429_with_retry_after_and_frees_the_slot() {
    let mut cfg = config();
    cfg.server.max_concurrent_requests = 1;
    cfg.server.retry_after_secs = 2;
    cfg.server.deadline_ms = 120_000;
    let srv = std::sync::Arc::new(start(cfg).await);
    let slow_body = chunks(&cold_texts("busy", 24, 200));
    let slow = {
        let srv = std::sync::Arc::clone(&srv);
        tokio::spawn(async move { srv.post("/v1/scan", &slow_body).await.status().as_u16() })
    };
    srv.wait_in_flight(1).await;
    let r = srv
        .post("/v1/scan", &json!({"chunks": [{"id": 1, "text": BENIGN}]}))
        .await;
    assert_eq!(r.status(), 429, "the one slot is taken");
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"]["kind"],
        "busy"
    );
    // Probes are not subject to the limit.
    assert_eq!(srv.get("/healthz").await.status(), 200);
    assert_eq!(
        slow.await.expect("task"),
        200,
        "the in-flight request completes"
    );
    let r = srv
        .post("/v1/scan", &json!({"chunks": [{"id": 1, "text": BENIGN}]}))
        .await;
    assert_eq!(r.status(), 200, "the slot is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_answers_504_without_verdicts() {
    let mut cfg = config();
    cfg.server.deadline_ms = 100;
    let srv = start(cfg).await;
    let r = srv
        .post("/v1/guard", &chunks(&cold_texts("deadline", 32, 200)))
        .await;
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["kind"], "deadline_exceeded");
    assert!(v.get("context").is_none() && v.get("chunks").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifier_overload_answers_503_and_never_a_verdict() {
    // A classifier of its own with a one-window queue: requests that have to wait are refused
    // at once by the real inference queue.
    let mut cfg = config();
    cfg.classifier.queue_capacity = 1;
    cfg.classifier.max_batch = 4;
    let detectors = ragwall::detect::from_config(&cfg).expect("detectors");
    let srv = std::sync::Arc::new(start_with(cfg, detectors, true).await);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let srv = std::sync::Arc::clone(&srv);
        let body = chunks(&cold_texts(&format!("overload{i}"), 8, 200));
        tasks.push(tokio::spawn(async move {
            let r = srv.post("/v1/scan", &body).await;
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap_or("").to_owned());
            (status, retry, r.json::<Value>().await.expect("json"))
        }));
    }
    let mut overloaded = 0;
    for t in tasks {
        let (status, retry, v) = t.await.expect("task");
        match status {
            200 => {
                let verdicts = v["verdicts"].as_array().expect("verdicts");
                assert_eq!(verdicts.len(), 8);
                assert!(verdicts.iter().all(|x| x["scanned"] == true));
            }
            503 => {
                overloaded += 1;
                assert_eq!(v["error"]["kind"], "overloaded");
                assert_eq!(retry.as_deref(), Some("1"));
                assert!(v.get("verdicts").is_none(), "no verdicts when not scanned");
            }
            other => panic!("unexpected status {other}: {v}"),
        }
    }
    assert!(overloaded >= 1, "at least one request found the queue full");
    let m = srv.metrics().await;
    assert!(super::metric(&m, "ragwall_classifier_overloaded_total") >= Some(1.0));
    assert!(super::metric(&m, r#"ragwall_http_errors_total{kind="overloaded"}"#) >= Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_requests_are_fine() {
    let srv = start(config()).await;
    let v: Value = srv
        .post("/v1/guard", &json!({"chunks": []}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(v["chunks"], json!([]));
    assert_eq!(v["context"], "");
}
