//! The proxy's listener and labels under hostile clients (issue 14: idle and dribbling
//! connections, early refusals on keep-alive connections, unbounded metric labels).

use std::time::{Duration, Instant};

use ragwall::http::listen::ConnectionLimits;
use tokio::io::AsyncReadExt;

use super::{FakeDetector, Replayer, client, config, fake_firewall, start_proxy};

fn keys_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ragwall-proxy-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("keys"), "ragwall-key-0123456789\n").expect("write");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_and_refusals_close_keep_alive() {
    let up = Replayer::start().await;
    let dir = keys_dir("conn");
    let mut cfg = config(&up.url());
    cfg.proxy.auth.keys_file = Some(dir.join("keys"));
    cfg.proxy.connections = ConnectionLimits {
        max_connections: 16,
        header_timeout_secs: 2,
        idle_timeout_secs: 2,
        body_timeout_secs: 2,
    };
    let proxy = start_proxy(&cfg, fake_firewall(FakeDetector::Score(0.0))).await;

    // A connection that never sends a byte is closed at the header timeout.
    let mut silent = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut buf))
        .await
        .expect("closed by the proxy")
        .ok();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    // An unauthenticated request with a body is refused with `Connection: close`, so a
    // keep-alive client never writes its next request into a closing connection.
    let resp = client()
        .post(proxy.url("/collections/docs/points/search"))
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024])
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["connection"], "close");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_do_not_grow_with_the_paths_clients_send() {
    let up = Replayer::start().await;
    let dir = keys_dir("labels");
    let mut cfg = config(&up.url());
    cfg.proxy.auth.keys_file = Some(dir.join("keys"));
    let proxy = start_proxy(&cfg, fake_firewall(FakeDetector::Score(0.0))).await;
    let c = client();
    for i in 0..300 {
        let resp = c
            .request(
                reqwest::Method::from_bytes(format!("X{}", i % 50).as_bytes()).expect("method"),
                proxy.url(&format!("/word{i}/another/collections")),
            )
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 401);
    }
    let text = c
        .get(proxy.url("/_ragwall/metrics"))
        .header("x-ragwall-api-key", "ragwall-key-0123456789")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ragwall_proxy_requests_total{"))
        .collect();
    assert_eq!(series.len(), 1, "{series:#?}");
    assert!(series[0].contains("route=\"other\""), "{series:#?}");
    assert!(series[0].contains("method=\"other\""), "{series:#?}");
    let _ = std::fs::remove_dir_all(dir);
}
