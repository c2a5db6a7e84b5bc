//! Every recorded Qdrant exchange through the proxy: point-bearing responses are filtered as
//! specified, every other response comes back byte-identical; encodings and chunking.

use std::collections::HashSet;

use serde_json::Value;

use super::{
    Encoding, Exchange, FakeDetector, ReplayOptions, Replayer, client, config, exchange, exchanges,
    fake_firewall, firewall, point_ids, send, start_proxy,
};

/// Points whose payload hides an injection: an instruction override (3), hidden Unicode tag
/// characters (4) and a Cyrillic homoglyph (5).
const INJECTED: [u64; 3] = [3, 4, 5];
/// Points with plain text.
const PLAIN: [u64; 3] = [1, 2, 6];

/// Exchanges whose responses carry point payloads (read off the recording, not the proxy).
const POINT_BEARING: [&str; 20] = [
    "search",
    "search_payload_include",
    "search_filter",
    "search_batch",
    "search_groups",
    "query",
    "query_named",
    "query_prefetch_fusion",
    "query_batch",
    "query_groups",
    "recommend",
    "recommend_batch",
    "recommend_groups",
    "discover",
    "discover_batch",
    "scroll",
    "scroll_page2",
    "retrieve",
    "get_point",
    "get_point_uuid",
];

/// The original response with the points not in `kept` removed from their arrays.
fn without(v: &Value, kept: &HashSet<String>) -> Value {
    match v {
        // Removed points leave their arrays; a group whose hits were all removed goes too.
        Value::Array(a) => {
            let removed = |x: &Value| {
                x.get("payload").is_some_and(Value::is_object)
                    && x.get("id")
                        .is_some_and(|id| !kept.contains(&id.to_string()))
            };
            let hits = |v: &Value| v.get("hits").and_then(Value::as_array).map(Vec::len);
            Value::Array(
                a.iter()
                    .filter(|x| !removed(x))
                    .filter_map(|x| {
                        let after = without(x, kept);
                        let emptied = hits(x).is_some_and(|n| n > 0) && hits(&after) == Some(0);
                        (!emptied).then_some(after)
                    })
                    .collect(),
            )
        }
        Value::Object(m) if m.contains_key("payload") && m.contains_key("id") => v.clone(),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), without(x, kept)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// Whether a response carries facet hits (`{"value": …, "count": n}`).
fn facet_values(v: &Value) -> bool {
    match v {
        Value::Object(m) if m.contains_key("value") && m.contains_key("count") => true,
        Value::Object(m) => m.values().any(facet_values),
        Value::Array(a) => a.iter().any(facet_values),
        _ => false,
    }
}

/// `v` with every `payload.ragwall` tag taken out; returns the tags by point id.
fn untag(v: &mut Value, tags: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m)
            if m.contains_key("id") && m.get("payload").is_some_and(Value::is_object) =>
        {
            let id = m["id"].to_string();
            if let Some(Value::Object(p)) = m.get_mut("payload")
                && let Some(t) = p.shift_remove("ragwall")
            {
                tags.push((id, t));
            }
        }
        Value::Object(m) => m.values_mut().for_each(|x| untag(x, tags)),
        Value::Array(a) => a.iter_mut().for_each(|x| untag(x, tags)),
        _ => {}
    }
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.to_str().ok())
}

/// Checks one point-bearing response against its recording.
fn check_filtered(e: &Exchange, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) {
    let original = point_ids(&e.response);
    if e.name == "get_point" {
        assert_eq!(
            status, 404,
            "the single injected point is withheld as not found"
        );
        assert_eq!(header(headers, "x-ragwall-quarantined"), Some("1"));
        let v: Value = serde_json::from_slice(body).expect("json");
        assert!(
            v["status"]["error"]
                .as_str()
                .expect("qdrant error shape")
                .contains("quarantined")
        );
        return;
    }
    if e.name == "get_point_uuid" && status == 404 {
        return;
    }
    assert_eq!(status, e.status, "{}", e.name);
    let mut v: Value = serde_json::from_slice(body).expect("json");
    let mut tags = Vec::new();
    untag(&mut v, &mut tags);
    let ids = point_ids(&v);
    let kept: HashSet<String> = ids.iter().map(Value::to_string).collect();
    let removed = original
        .iter()
        .filter(|i| !kept.contains(&i.to_string()))
        .count();
    assert_eq!(
        header(headers, "x-ragwall-quarantined"),
        Some(removed.to_string().as_str()),
        "{}",
        e.name
    );
    // Shape, order, scores and every other field of the surviving points are untouched.
    assert_eq!(v, without(&e.response, &kept), "{}", e.name);
    for id in &original {
        let n = id.as_u64();
        let key = id.to_string();
        let tag = tags.iter().find(|(t, _)| *t == key);
        if n.is_some_and(|n| PLAIN.contains(&n)) {
            assert!(
                kept.contains(&id.to_string()),
                "{}: plain point {id} removed",
                e.name
            );
            assert!(
                tag.is_none(),
                "{}: plain point {id} tagged: {tag:?}",
                e.name
            );
        }
        if n.is_some_and(|n| INJECTED.contains(&n)) && kept.contains(&id.to_string()) {
            let (_, t) = tag.unwrap_or_else(|| panic!("{}: injected point {id} passed", e.name));
            assert_eq!(t["action"], "tag");
            assert!(t["score"].is_number() && t["reasons"].is_array() && t["model"].is_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_exchange_is_filtered_or_passed_byte_identical() {
    let up = Replayer::start().await;
    let proxy = start_proxy(&config(&up.url()), firewall()).await;
    let c = client();
    let mut filtered = Vec::new();
    for e in exchanges() {
        let resp = send(&c, &proxy, &e).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body");
        if point_ids(&e.response).is_empty() {
            assert_eq!(status, e.status, "{}", e.name);
            assert_eq!(
                &body[..],
                &e.body()[..],
                "{}: body must be byte-identical",
                e.name
            );
            assert_eq!(
                header(&headers, "content-type"),
                Some(e.content_type.as_str())
            );
            assert_eq!(
                header(&headers, "x-upstream"),
                Some("replayer"),
                "{}",
                e.name
            );
            if facet_values(&e.response) {
                // Facet values are payload values: scanned (issue 14), benign here, untouched.
                assert_eq!(header(&headers, "x-ragwall-values-removed"), Some("0"));
            } else {
                assert!(
                    headers.keys().all(|k| !k.as_str().starts_with("x-ragwall")),
                    "{}: {headers:?}",
                    e.name
                );
            }
            continue;
        }
        filtered.push(e.name.clone());
        check_filtered(&e, status, &headers, &body);
    }
    assert_eq!(
        filtered, POINT_BEARING,
        "every point-bearing exchange was checked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_and_chunked_upstream_bodies_are_scanned() {
    let up = Replayer::start().await;
    let proxy = start_proxy(&config(&up.url()), firewall()).await;
    let c = client();
    let search = exchange("search");
    let info = exchange("collection_info");
    for (encoding, chunked) in [
        (Encoding::Gzip, false),
        (Encoding::Deflate, false),
        (Encoding::Identity, true),
        (Encoding::Gzip, true),
    ] {
        up.set(ReplayOptions {
            encoding,
            chunked,
            canned: None,
        });
        let resp = send(&c, &proxy, &search).await;
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let body = resp.bytes().await.expect("body");
        assert!(
            headers.get("content-encoding").is_none(),
            "a rewritten body goes back decoded ({encoding:?})"
        );
        check_filtered(&search, status, &headers, &body);
        assert_eq!(
            header(&headers, "content-length"),
            Some(body.len().to_string().as_str())
        );
        // No point payloads: the very bytes Qdrant sent, encoding included.
        let resp = send(&c, &proxy, &info).await;
        let coding = header(resp.headers(), "content-encoding").map(str::to_owned);
        let body = resp.bytes().await.expect("body");
        match encoding {
            Encoding::Gzip => {
                assert_eq!(coding.as_deref(), Some("gzip"));
                assert_eq!(&body[..], &super::gzip(&info.body())[..]);
            }
            Encoding::Deflate => assert_eq!(coding.as_deref(), Some("deflate")),
            Encoding::Identity => assert_eq!(&body[..], &info.body()[..]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_forwarded_whole() {
    let up = Replayer::start().await;
    let proxy = start_proxy(&config(&up.url()), firewall()).await;
    let e = exchange("collections_list");
    let resp = client()
        .get(proxy.url("/collections?x=1&y=%2F"))
        .header("api-key", "qdrant-secret")
        .header("authorization", "Bearer qdrant-jwt")
        .header("accept-encoding", "br, gzip")
        .header("x-custom", "kept")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.expect("body")[..], &e.body()[..]);
    let seen = up.seen();
    let s = seen.last().expect("upstream saw the request");
    assert_eq!(s.path_and_query, "/collections?x=1&y=%2F");
    assert_eq!(s.headers["api-key"], "qdrant-secret");
    assert_eq!(s.headers["authorization"], "Bearer qdrant-jwt");
    assert_eq!(s.headers["x-custom"], "kept");
    assert_eq!(
        s.headers["accept-encoding"], "gzip",
        "only what the proxy can decode"
    );
    assert!(s.headers.contains_key("x-request-id"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapping_replaces_text_fields_with_envelopes() {
    let up = Replayer::start().await;
    let mut cfg = config(&up.url());
    cfg.proxy.wrap = true;
    let proxy = start_proxy(&cfg, firewall()).await;
    let resp = send(&client(), &proxy, &exchange("search")).await;
    assert_eq!(resp.status(), 200);
    let nonce = header(resp.headers(), "x-ragwall-wrap-nonce")
        .expect("nonce header")
        .to_owned();
    let v: Value = resp.json().await.expect("json");
    let first = &v["result"][0];
    assert_eq!(first["id"], 1);
    let text = first["payload"]["text"].as_str().expect("text");
    assert!(
        text.starts_with(&format!("<untrusted_data_{nonce} "))
            && text.contains("Qdrant stores vectors"),
        "{text}"
    );
    assert!(
        first["payload"]["source"]
            .as_str()
            .expect("source")
            .contains("manual.md")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_compressed_chunked_results_are_scanned_whole() {
    // 3000 points × 2 text fields: six times the firewall's per-call chunk limit.
    let points: Vec<Value> = (0..3000u64)
        .map(|i| {
            let text = if i % 1000 == 999 {
                format!("chunk {i}: INJECT new instructions")
            } else {
                format!("chunk {i}: ordinary text")
            };
            serde_json::json!({"id": i, "payload": {"text": text, "source": format!("f{i}.md")}})
        })
        .collect();
    let mut e = exchange("scroll");
    e.response["result"]["points"] = Value::Array(points);
    let up = Replayer::with(vec![e.clone()]).await;
    up.set(ReplayOptions {
        encoding: Encoding::Gzip,
        chunked: true,
        canned: None,
    });
    let proxy = start_proxy(
        &config(&up.url()),
        fake_firewall(FakeDetector::Keyword("INJECT")),
    )
    .await;
    let resp = send(&client(), &proxy, &e).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ragwall-quarantined"], "3");
    let v: Value = resp.json().await.expect("json");
    let ids = point_ids(&v);
    assert_eq!(ids.len(), 2997);
    assert!(!ids.contains(&999.into()) && !ids.contains(&2999.into()));
    assert_eq!(v["result"]["next_page_offset"], 4);
}
