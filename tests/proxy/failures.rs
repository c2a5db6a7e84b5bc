//! Failing closed: upstream down, slow, too large or unparseable, classifier failure or
//! overload, policy block; fail-open only when configured and then marked; the proxy's own API
//! keys.

use serde_json::Value;

use super::{
    FakeDetector, ReplayOptions, Replayer, client, config, exchange, fake_firewall, send,
    start_proxy,
};

async fn qdrant_error(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let v: Value = resp.json().await.expect("JSON error body");
    assert!(v["time"].is_number(), "Qdrant error shape: {v}");
    let msg = v["status"]["error"]
        .as_str()
        .expect("status.error")
        .to_owned();
    (status, headers, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_slow_upstreams_fail_closed() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let proxy = start_proxy(
        &config(&format!("http://{addr}")),
        fake_firewall(FakeDetector::Score(0.0)),
    )
    .await;
    let resp = send(&client(), &proxy, &exchange("search")).await;
    let (status, h, msg) = qdrant_error(resp).await;
    assert_eq!(status, 502);
    assert_eq!(h["x-ragwall-error"], "upstream_unreachable");
    assert!(msg.contains("upstream unreachable"), "{msg}");

    // An upstream that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            conns.push(s);
        }
    });
    let mut cfg = config(&format!("http://{silent_addr}"));
    cfg.proxy.upstream_timeout_secs = 1;
    let proxy = start_proxy(&cfg, fake_firewall(FakeDetector::Score(0.0))).await;
    let (status, h, _) = qdrant_error(send(&client(), &proxy, &exchange("search")).await).await;
    assert_eq!(
        (status, &h["x-ragwall-error"]),
        (504, &"upstream_timeout".parse().expect("hv"))
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_or_oversized_bodies_are_not_passed() {
    let up = Replayer::start().await;
    up.set(ReplayOptions {
        canned: Some((
            200,
            "application/json".into(),
            b"{\"result\": [{\"id\": 3, \"payload\"".to_vec(),
        )),
        ..ReplayOptions::default()
    });
    let proxy = start_proxy(&config(&up.url()), fake_firewall(FakeDetector::Score(0.0))).await;
    let (status, h, _) = qdrant_error(send(&client(), &proxy, &exchange("search")).await).await;
    assert_eq!(
        (status, h["x-ragwall-error"].to_str().expect("ascii")),
        (502, "unscannable")
    );

    // Not JSON and not said to be: passes untouched (Qdrant's metrics, the dashboard).
    up.set(ReplayOptions {
        canned: Some((200, "text/plain".into(), b"# HELP x\nx 1\n".to_vec())),
        ..ReplayOptions::default()
    });
    let resp = client()
        .get(proxy.url("/metrics"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.expect("body")[..], b"# HELP x\nx 1\n");

    // Larger than the proxy may buffer: refused, never streamed unscanned.
    up.set(ReplayOptions::default());
    let mut cfg = config(&up.url());
    cfg.proxy.max_body_bytes = 200;
    let small = start_proxy(&cfg, fake_firewall(FakeDetector::Score(0.0))).await;
    let (status, h, _) = qdrant_error(send(&client(), &small, &exchange("search")).await).await;
    assert_eq!(
        (status, h["x-ragwall-error"].to_str().expect("ascii")),
        (502, "response_too_large")
    );
    // …also when it arrives gzip-compressed below the limit.
    up.set(ReplayOptions {
        encoding: super::Encoding::Gzip,
        ..ReplayOptions::default()
    });
    let (status, _, _) =
        qdrant_error(send(&client(), &small, &exchange("scroll_page2")).await).await;
    assert_eq!(status, 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classifier_failures_fail_closed_unless_configured_open() {
    let up = Replayer::start().await;
    let search = exchange("search");
    let proxy = start_proxy(&config(&up.url()), fake_firewall(FakeDetector::Overloaded)).await;
    let (status, h, _) = qdrant_error(send(&client(), &proxy, &search).await).await;
    assert_eq!(status, 503);
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["x-ragwall-error"], "overloaded");
    // Responses without points need no classifier.
    let info = exchange("collection_info");
    let resp = send(&client(), &proxy, &info).await;
    assert_eq!(resp.status(), 200);

    let proxy = start_proxy(&config(&up.url()), fake_firewall(FakeDetector::Failing)).await;
    let (status, h, msg) = qdrant_error(send(&client(), &proxy, &search).await).await;
    assert_eq!(
        (status, h["x-ragwall-error"].to_str().expect("ascii")),
        (503, "scan_failed")
    );
    assert!(
        !msg.contains("model crashed"),
        "internal detail stays in the log: {msg}"
    );

    let mut cfg = config(&up.url());
    cfg.proxy.fail_open = true;
    let proxy = start_proxy(&cfg, fake_firewall(FakeDetector::Failing)).await;
    let resp = send(&client(), &proxy, &search).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ragwall-fail-open"], "scan_failed");
    assert_eq!(&resp.bytes().await.expect("body")[..], &search.body()[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_verdict_refuses_the_whole_response() {
    let up = Replayer::start().await;
    let mut cfg = config(&up.url());
    cfg.policy.default.block = Some(ragwall::policy::Threshold::Value(0.9));
    let fw = std::sync::Arc::new(
        ragwall::Firewall::new(&cfg, std::sync::Arc::new(FakeDetector::Score(0.95)))
            .expect("policy"),
    );
    let proxy = start_proxy(&cfg, fw).await;
    let (status, h, msg) = qdrant_error(send(&client(), &proxy, &exchange("search")).await).await;
    assert_eq!(
        (status, h["x-ragwall-error"].to_str().expect("ascii")),
        (403, "blocked")
    );
    assert!(msg.contains("blocked"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_api_keys_are_separate_from_qdrants() {
    let up = Replayer::start().await;
    let dir = std::env::temp_dir().join(format!("ragwall-proxy-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let keys = dir.join("keys");
    std::fs::write(&keys, "# proxy clients\nragwall-key-0123456789\n").expect("write");
    let mut cfg = config(&up.url());
    cfg.proxy.auth.keys_file = Some(keys);
    let proxy = start_proxy(&cfg, fake_firewall(FakeDetector::Score(0.0))).await;
    let c = client();
    let list = proxy.url("/collections");
    let resp = c
        .get(&list)
        .header("api-key", "qdrant-secret")
        .send()
        .await
        .expect("sent");
    let (status, _, _) = qdrant_error(resp).await;
    assert_eq!(status, 401);
    let resp = c
        .get(&list)
        .header("x-ragwall-api-key", "wrong-key-0123456789")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 401);
    let resp = c
        .get(&list)
        .header("x-ragwall-api-key", "ragwall-key-0123456789")
        .header("api-key", "qdrant-secret")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "refused requests never reach Qdrant");
    assert_eq!(seen[0].headers["api-key"], "qdrant-secret");
    assert!(
        !seen[0].headers.contains_key("x-ragwall-api-key"),
        "ragwall's key is not forwarded"
    );
    let health = c
        .get(proxy.url("/_ragwall/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
    let metrics = c
        .get(proxy.url("/_ragwall/metrics"))
        .header("x-ragwall-api-key", "ragwall-key-0123456789")
        .send()
        .await
        .expect("sent");
    let text = metrics.text().await.expect("text");
    assert!(text.contains("ragwall_proxy_requests_total"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_past_its_deadline_is_withheld_not_waited_for() {
    let up = Replayer::start().await;
    let mut cfg = config(&up.url());
    cfg.proxy.scan_deadline_ms = 300;
    let slow = || fake_firewall(FakeDetector::Slow(std::time::Duration::from_secs(2)));
    let proxy = start_proxy(&cfg, slow()).await;
    let started = std::time::Instant::now();
    let resp = send(&client(), &proxy, &exchange("search")).await;
    let (status, h, msg) = qdrant_error(resp).await;
    assert_eq!(status, 504, "{msg}");
    assert_eq!(h["x-ragwall-error"], "scan_timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "the answer did not wait for the scan: {:?}",
        started.elapsed()
    );
    // With fail_open the response passes unscanned, and says so.
    cfg.proxy.fail_open = true;
    let proxy = start_proxy(&cfg, slow()).await;
    let resp = send(&client(), &proxy, &exchange("search")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ragwall-fail-open"], "scan_timeout");
}
