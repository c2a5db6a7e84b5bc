//! The service's own security: API keys and TLS.

use serde_json::{Value, json};

use super::{BENIGN, config, metric, start, temp_dir};

const KEY_A: &str = "ragwall-test-key-aaaaaaaaaaaaaaaa";
const KEY_B: &str = "ragwall-test-key-bbbbbbbbbbbbbbbb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_protect_v1_and_are_never_echoed() {
    let dir = temp_dir("keys");
    let file = dir.join("keys");
    // A short key refuses to start: the service never runs open or weak by mistake.
    std::fs::write(&file, format!("{KEY_A}\nshort-key\n")).expect("write keys");
    let mut cfg = config();
    cfg.server.auth.keys_file = Some(file.clone());
    assert!(ragwall::server::App::new(&cfg, crate::common::detectors()).is_err());
    std::fs::write(&file, format!("# ops\n{KEY_A}\n\n{KEY_B}\n")).expect("write keys");
    let srv = start(cfg).await;
    let body = json!({"chunks": [{"id": 1, "text": BENIGN}]});
    let send = |auth: Option<String>| {
        let mut req = srv.client.post(srv.url("/v1/scan")).json(&body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };

    for (auth, why) in [
        (None, "missing"),
        (Some(format!("Bearer {KEY_A}x")), "wrong key"),
        (
            Some(format!("Bearer {}", &KEY_A[..KEY_A.len() - 1])),
            "prefix of a key",
        ),
        (Some(format!("Basic {KEY_A}")), "wrong scheme"),
        (Some(KEY_A.to_owned()), "no scheme"),
    ] {
        let r = send(auth).await.expect("answered");
        assert_eq!(r.status(), 401, "{why}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .expect("challenge")
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let text = r.text().await.expect("body");
        assert!(!text.contains(KEY_A), "the key is never echoed: {text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["error"]["kind"], "unauthorized", "{why}");
    }
    for key in [KEY_A, KEY_B] {
        let r = send(Some(format!("Bearer {key}"))).await.expect("answered");
        assert_eq!(r.status(), 200, "key {key}");
    }
    let r = srv
        .client
        .get(srv.url("/v1/model"))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 401, "/v1/model is protected too");
    for open in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            srv.get(open).await.status(),
            200,
            "{open} stays open for probes"
        );
    }
    let m = srv.metrics().await;
    assert_eq!(
        metric(&m, r#"ragwall_http_errors_total{kind="unauthorized"}"#),
        Some(6.0)
    );
    assert_eq!(
        metric(
            &m,
            r#"ragwall_http_requests_total{method="POST",route="/v1/scan",status="401"}"#
        ),
        Some(5.0)
    );
    assert!(!m.contains(KEY_A) && !format!("{:?}", srv.app).contains(KEY_A));
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_and_refuses_plain_http() {
    let dir = temp_dir("tls");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    std::fs::write(dir.join("cert.pem"), &cert_pem).expect("write");
    std::fs::write(dir.join("key.pem"), &key_pem).expect("write");
    let mut cfg = config();
    cfg.server.tls_cert = Some(dir.join("cert.pem"));
    cfg.server.tls_key = Some(dir.join("key.pem"));
    let srv = start(cfg).await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .tls_built_in_root_certs(false)
        .resolve("localhost", srv.addr)
        .https_only(true)
        .build()
        .expect("client");
    let base = format!("https://localhost:{}", srv.addr.port());
    let r = client
        .post(format!("{base}/v1/guard"))
        .json(&json!({"chunks": [{"id": 1, "text": BENIGN}]}))
        .send()
        .await
        .expect("https works");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert!(v["context"].as_str().expect("context").contains("Refunds"));
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = srv.client.get(srv.url("/healthz")).send().await;
    assert!(
        plain.is_err() || !plain.expect("response").status().is_success(),
        "plain HTTP must not be served"
    );
    // A certificate that does not match its key refuses to start.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(dir.join("key.pem"), other.key_pair.serialize_pem()).expect("write");
    assert!(
        ragwall::server::tls::load(&dir.join("cert.pem"), &dir.join("key.pem")).is_err(),
        "mismatched key is refused"
    );
    std::fs::remove_dir_all(dir).ok();
}
