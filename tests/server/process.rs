//! The `ragwall serve` binary: flags and environment variables, readiness, SIGTERM finishing
//! in-flight requests, and `ragwall audit verify`.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::{INJECTION, chunks, cold_texts, temp_dir};
use crate::common;

const KEY: &str = "process-test-key-0123456789abcdef";

/// Kills the child if the test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish_and_audit_verify_checks_the_log() {
    let dir = temp_dir("process");
    let audit = dir.join("audit.jsonl");
    let stderr_path = dir.join("stderr.log");
    let port = free_port();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_ragwall"))
            .args([
                "--log",
                "info",
                "serve",
                "--api-keys-env",
                "RAGWALL_TEST_KEYS",
            ])
            .args(["--deadline-ms", "120000"])
            .arg("--audit-log")
            .arg(&audit)
            .current_dir(common::root())
            .env("ORT_DYLIB_PATH", common::ort())
            .env("RAGWALL_CFG__CLASSIFIER__MODEL_DIR", common::model_dir())
            .env_remove("RAGWALL_CONFIG")
            .env("RAGWALL_SERVE_LISTEN", format!("127.0.0.1:{port}"))
            .env("RAGWALL_TEST_KEYS", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("spawn ragwall serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");

    // Alive first, ready once the model has answered its warm-up.
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        assert!(
            child.0.try_wait().expect("wait").is_none(),
            "server exited: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not ready in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let scan = json!({"chunks": [{"id": "x", "text": INJECTION}]});
    let r = client
        .post(format!("{base}/v1/scan"))
        .json(&scan)
        .send()
        .await
        .expect("answered");
    assert_eq!(
        r.status(),
        401,
        "keys from the variable named by --api-keys-env"
    );
    let r = client
        .post(format!("{base}/v1/scan"))
        .bearer_auth(KEY)
        .json(&scan)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);

    // A slow request in flight when SIGTERM arrives still gets its full answer.
    let slow = {
        let (client, url) = (client.clone(), format!("{base}/v1/guard"));
        let body = chunks(&cold_texts("sigterm", 32, 200));
        tokio::spawn(async move {
            let r = client.post(url).bearer_auth(KEY).json(&body).send().await?;
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await?;
            Ok::<_, reqwest::Error>((status, v))
        })
    };
    // In flight when /metrics (itself a request) counts two.
    loop {
        let m = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics");
        let m = m.text().await.expect("text");
        if super::metric(&m, "ragwall_http_requests_in_flight") >= Some(2.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "slow request never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.0.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let (status, v) = slow
        .await
        .expect("task")
        .expect("in-flight request answered");
    assert_eq!(status, 200, "{v}");
    let answered = v["chunks"].as_array().map_or(0, Vec::len)
        + v["quarantined"].as_array().map_or(0, Vec::len);
    assert_eq!(answered, 32, "complete answer: {v}");

    let exit = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        exit.success(),
        "clean exit after SIGTERM: {exit:?}\n{stderr}"
    );
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(!stderr.contains(KEY), "the API key is never logged");
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "no longer accepting connections"
    );

    // The audit log holds the quarantined chunk and verifies; a tampered copy does not.
    let out = common::ragwall(&["audit", "verify", audit.to_str().expect("utf8")], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&audit).expect("audit");
    let lines = text.lines().count();
    assert!(lines >= 1, "the quarantined chunk is audited");
    assert!(
        stdout.starts_with(&format!("ok: {lines} line(s), head sha256 ")),
        "{stdout}"
    );
    let tampered = dir.join("tampered.jsonl");
    std::fs::write(&tampered, format!("{text}{text}")).expect("write");
    let out = common::ragwall(&["audit", "verify", tampered.to_str().expect("utf8")], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_in_process_finishes_in_flight_requests() {
    let mut cfg = super::config();
    cfg.server.deadline_ms = 120_000;
    let srv = super::start(cfg).await;
    let slow = {
        let req = srv
            .client
            .post(srv.url("/v1/scan"))
            .json(&chunks(&cold_texts("stop", 16, 200)));
        tokio::spawn(async move { req.send().await.expect("answered").status().as_u16() })
    };
    srv.wait_in_flight(1).await;
    let addr = srv.addr;
    let stopping = tokio::spawn(srv.stop());
    assert_eq!(
        slow.await.expect("task"),
        200,
        "in-flight request completes"
    );
    stopping.await.expect("stopped");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "listener closed"
    );
}
