//! What a client that connects and sends nothing, dribbles, idles or never finishes its body
//! can cost (`[server.connections]`, `ragwall::http::listen`), and that shutdown completes
//! while such a client is connected. Timeouts are set to a few seconds here.

use std::time::{Duration, Instant};

use ragwall::http::listen::ConnectionLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{BENIGN, config, start};

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 8,
        header_timeout_secs: 2,
        idle_timeout_secs: 3,
        body_timeout_secs: 2,
    }
}

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn until_closed(conn: &mut TcpStream, at_most: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(at_most, conn.read_to_end(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("connection still open after {at_most:?}"))
        .ok();
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_dribbling_connections_are_closed_at_the_header_timeout() {
    let mut cfg = config();
    cfg.server.connections = limits();
    let srv = start(cfg).await;

    let mut silent = TcpStream::connect(srv.addr).await.expect("connect");
    let mut dribble = TcpStream::connect(srv.addr).await.expect("connect");
    let writer = tokio::spawn(async move {
        // One byte every 500 ms: never a complete head.
        for b in b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaa" {
            if dribble.write_all(&[*b]).await.is_err() {
                return dribble;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        dribble
    });
    let (text, waited) = until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert!(
        waited >= Duration::from_millis(1500),
        "closed too early: {waited:?}"
    );
    let mut dribble = writer.await.expect("writer");
    let (text, _) = until_closed(&mut dribble, Duration::from_secs(10)).await;
    assert!(
        !text.contains("200 OK"),
        "a dribbled request was served: {text}"
    );
    // The service still answers others.
    let r = srv.get("/healthz").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_and_busy_ones_are_not() {
    let mut cfg = config();
    cfg.server.connections = limits();
    let srv = start(cfg).await;
    let mut conn = TcpStream::connect(srv.addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 12];
    conn.read_exact(&mut first).await.expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");
    let (_, waited) = until_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(
        waited >= Duration::from_secs(2),
        "the idle timeout (3 s) was not waited for: {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let mut cfg = config();
    cfg.server.connections = limits();
    let srv = start(cfg).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(srv.addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(srv.addr).await.expect("connect");
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (text, waited) = until_closed(&mut extra, Duration::from_secs(5)).await;
    assert!(text.is_empty(), "the ninth connection was served: {text}");
    assert!(waited < Duration::from_secs(1), "{waited:?}");
    // Once the held connections time out, the service answers again.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.get("/healthz").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_and_frees_its_permit() {
    let mut cfg = config();
    cfg.server.connections = limits();
    cfg.server.max_concurrent_requests = 1;
    let srv = start(cfg).await;
    let body = serde_json::json!({"chunks": [{"id": "a", "text": BENIGN}]}).to_string();
    let mut conn = TcpStream::connect(srv.addr).await.expect("connect");
    let head = format!(
        "POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.expect("head");
    conn.write_all(&body.as_bytes()[..10]).await.expect("part");
    // While the slow body is pending, another client is served (the permit is not held).
    let r = srv
        .post(
            "/v1/scan",
            &serde_json::json!({"chunks": [{"id": "b", "text": BENIGN}]}),
        )
        .await;
    assert_eq!(r.status(), 200, "a slow body must not hold the only permit");
    let (text, waited) = until_closed(&mut conn, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(waited >= Duration::from_millis(1500), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_with_a_client_connected() {
    let mut cfg = config();
    cfg.server.connections = ConnectionLimits {
        header_timeout_secs: 60,
        idle_timeout_secs: 60,
        ..limits()
    };
    cfg.server.shutdown_grace_secs = 1;
    let srv = start(cfg).await;
    let mut slow = TcpStream::connect(srv.addr).await.expect("connect");
    slow.write_all(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), srv.stop())
        .await
        .expect("shutdown completes within the grace period");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_the_body_close_the_connection() {
    let dir = super::temp_dir("refusal");
    let keys = dir.join("keys");
    std::fs::write(&keys, "a-secret-key-of-enough-length-000\n").expect("keys");
    let mut cfg = config();
    cfg.server.auth.keys_file = Some(keys);
    let srv = start(cfg).await;
    let r = srv
        .post(
            "/v1/scan",
            &serde_json::json!({"chunks": [{"id": "a", "text": BENIGN}]}),
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()
            .get("connection")
            .map(|v| v.to_str().unwrap_or("")),
        Some("close")
    );
    std::fs::remove_dir_all(dir).ok();
}
