//! A bounded load test: 32 concurrent clients for 10 seconds against `/v1/scan` and `/v1/guard`,
//! with zero errors and zero unscanned answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BENIGN, INJECTION, cold_texts, config, start};

const CLIENTS: usize = 32;
const DURATION: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_clients_for_ten_seconds_without_errors() {
    let mut cfg = config();
    // Clients stop sending after DURATION; the deadline bounds the requests still in flight
    // (generous, so a slow debug build on two cores measures correctness, not speed).
    cfg.server.deadline_ms = 120_000;
    let srv = Arc::new(start(cfg).await);
    // Mostly repeated texts (the cache's job) plus one new text per request (the model's job).
    let pool: Arc<Vec<String>> = Arc::new(
        cold_texts("load-pool", 8, 60)
            .into_iter()
            .chain([BENIGN.to_owned(), INJECTION.to_owned()])
            .collect(),
    );
    let started = Instant::now();
    let deadline = started + DURATION;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (srv, pool) = (Arc::clone(&srv), Arc::clone(&pool));
        clients.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut unscanned) = (0u64, Vec::new(), 0u64);
            let mut i = 0usize;
            while Instant::now() < deadline {
                i += 1;
                let mut chunks: Vec<Value> = (0..9)
                    .map(|k| json!({"id": k, "text": pool[(c + i + k) % pool.len()]}))
                    .collect();
                let fresh = cold_texts(&format!("load-{c}-{i}"), 1, 40).remove(0);
                chunks.push(json!({"id": 9, "text": fresh}));
                let route = if i.is_multiple_of(2) {
                    "/v1/scan"
                } else {
                    "/v1/guard"
                };
                let r = srv.post(route, &json!({ "chunks": chunks })).await;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status != 200 {
                    errors.push(format!("{route} {status}: {v}"));
                    continue;
                }
                ok += 1;
                if route == "/v1/scan" {
                    let verdicts = v["verdicts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                    if verdicts.len() != 10 {
                        errors.push(format!("{} verdicts", verdicts.len()));
                    }
                    unscanned += verdicts.iter().filter(|x| x["scanned"] != true).count() as u64;
                } else {
                    let passed = v["chunks"].as_array().map_or(0, Vec::len);
                    let removed = v["quarantined"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]);
                    if passed + removed.len() != 10 {
                        errors.push(format!("guard answered {} chunks", passed + removed.len()));
                    }
                    unscanned += removed.iter().filter(|x| x["scanned"] != true).count() as u64;
                    if v["context"]
                        .as_str()
                        .is_some_and(|c| c.contains("Ignore all previous"))
                    {
                        errors.push("injection reached the context".into());
                    }
                }
            }
            (ok, errors, unscanned)
        }));
    }
    let (mut ok, mut errors, mut unscanned) = (0u64, Vec::new(), 0u64);
    for c in clients {
        let (o, e, u) = c.await.expect("client task");
        ok += o;
        errors.extend(e);
        unscanned += u;
    }
    let took = started.elapsed().as_secs_f64();
    eprintln!(
        "load: {ok} requests in {took:.0} s ({:.1} req/s), {} errors",
        ok as f64 / took,
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(unscanned, 0, "every chunk was scanned");
    assert!(ok >= CLIENTS as u64, "every client got answers ({ok})");
    let m = srv.metrics().await;
    assert_eq!(
        super::metric(&m, "ragwall_http_requests_in_flight"),
        Some(1.0),
        "only the scrape itself is in flight: nothing leaked"
    );
}
