//! No spelling of a path reaches an unscanned payload, and none changes which collection's rules
//! apply.

use serde_json::Value;

use super::{
    ReplayOptions, Replayer, client, config, exchange, firewall, point_ids, raw_request,
    start_proxy,
};

fn injected_passed(v: &Value) -> bool {
    fn walk(v: &Value) -> bool {
        match v {
            Value::Object(m)
                if m.contains_key("id") && m.get("payload").is_some_and(Value::is_object) =>
            {
                [3, 4, 5].iter().any(|n| m["id"] == *n) && m["payload"].get("ragwall").is_none()
            }
            Value::Object(m) => m.values().any(walk),
            Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    walk(v)
}

/// Whatever path the client writes, the upstream answers with the recorded search result here,
/// so every answer must come back filtered (or refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_path_spelling_skips_the_scan() {
    let up = Replayer::start().await;
    let search = exchange("search");
    up.set(ReplayOptions {
        canned: Some((200, "application/json".into(), search.body())),
        ..ReplayOptions::default()
    });
    let proxy = start_proxy(&config(&up.url()), firewall()).await;
    let paths = [
        "/collections/docs/points/search",
        "/collections/docs/points/search/",
        "//collections//docs//points//search",
        "/collections/d%6Fcs/points/%73earch",
        "/COLLECTIONS/docs/POINTS/SEARCH",
        "/collections/docs/points/search?with_payload=true",
        "/collections/docs/points/search%3F",
        "/collections/docs/points/search;x=1",
        "/collections/docs/points/some-future-endpoint",
        "/v2/anything",
        "/",
    ];
    for method in ["POST", "GET", "PUT"] {
        for p in paths {
            let (status, body) = raw_request(proxy.addr, method, p).await;
            let body: Value = serde_json::from_slice(&body).expect("json");
            assert!(status == 200 || status >= 400, "{method} {p}: {status}");
            assert!(!injected_passed(&body), "{method} {p}: {body}");
            if status == 200 {
                assert!(point_ids(&body).contains(&1.into()), "{method} {p}");
            }
        }
    }
    for p in [
        "/collections/docs/../docs/points/search",
        "/collections/%2e%2e/points/search",
        "/collections/do%2Fcs/points/search",
        "/collections/%ff/points/search",
    ] {
        let (status, body) = raw_request(proxy.addr, "POST", p).await;
        assert_eq!(status, 400, "{p}");
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert!(v["status"]["error"].is_string(), "Qdrant error shape: {v}");
    }
    let canonical: Vec<String> = up.seen().iter().map(|s| s.path_and_query.clone()).collect();
    assert!(
        canonical
            .iter()
            .all(|p| !p.contains("//") && !p.contains("%6F")),
        "{canonical:?}"
    );
}

/// Collection rules follow the canonical name: a weak default (no text fields) does not apply to
/// `docs` however its name is spelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collection_rules_follow_the_decoded_name() {
    let up = Replayer::start().await;
    let mut cfg = config(&up.url());
    cfg.proxy.text_fields = vec!["no_such_field".into()];
    cfg.proxy.collections.insert(
        "docs".into(),
        ragwall::proxy::config::CollectionConfig {
            text_fields: vec!["text".into()],
        },
    );
    let proxy = start_proxy(&cfg, firewall()).await;
    let search = exchange("search");
    for p in [
        "/collections/docs/points/search",
        "/collections/d%6Fcs/points/search",
        "//collections/docs/points/search/",
    ] {
        let resp = client()
            .post(proxy.url(p))
            .json(&search.request)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 200, "{p}");
        let v: Value = resp.json().await.expect("json");
        assert!(!injected_passed(&v), "{p}: {v}");
        let seen = up.seen();
        assert_eq!(
            seen.last().expect("seen").path_and_query,
            "/collections/docs/points/search"
        );
    }
}
