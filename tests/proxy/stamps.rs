//! Scan once, trust stamps: a valid stamp decides without the detector; any mismatch (foreign
//! key, changed text, other collection) is rescanned.

use serde_json::{Map, Value};

use ragwall::Action;
use ragwall::stamp::{Expected, Stamp, StampKey, content_sha256};

use super::{
    Exchange, FakeDetector, Replayer, client, config, exchange, fake_firewall, point_ids, send,
    start_proxy,
};

const KEY: &[u8] = b"test-stamp-key-0123456789abcdef-0123456789";

/// Every string leaf of a payload with its path, as `stamp.rs` documents it.
fn fields(v: &Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((path, s.clone())),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| fields(x, format!("{path}[{i}]"), out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            fields(x, p, out)
        }),
        _ => {}
    }
}

fn sign(key: &StampKey, payload: &Map<String, Value>, action: Action, collection: &str) -> Value {
    let mut f = Vec::new();
    fields(&Value::Object(payload.clone()), String::new(), &mut f);
    let sha = content_sha256(f.iter().map(|(p, t)| (p.as_str(), t.as_str())));
    Stamp::sign(
        key,
        action,
        0.5,
        vec!["test".into()],
        Expected {
            sha256: &sha,
            detector: "fake:1",
            policy: "default-1",
            collection,
        },
    )
    .to_value()
}

/// `scroll_page2` (points 4, 5, 6 and the UUID point) with `stamp(id, payload)` put in each
/// payload.
fn stamped(stamp: impl Fn(&Value, &mut Map<String, Value>) -> Option<Value>) -> Exchange {
    let mut e = exchange("scroll_page2");
    for p in e.response["result"]["points"]
        .as_array_mut()
        .expect("points")
    {
        let id = p["id"].clone();
        let payload = p["payload"].as_object_mut().expect("payload");
        if let Some(s) = stamp(&id, payload) {
            payload.insert("ragwall".into(), s);
        }
    }
    e
}

fn key_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ragwall-stamps-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let f = dir.join("key");
    std::fs::write(&f, KEY).expect("write");
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_stamps_decide_without_scanning() {
    let key = StampKey::new(KEY, "test").expect("key");
    let e = stamped(|id, payload| {
        let action = match id.as_u64() {
            Some(4) => Action::Quarantine,
            Some(5) => Action::Tag,
            _ => Action::Allow,
        };
        Some(sign(&key, payload, action, "docs"))
    });
    let up = Replayer::with(vec![e.clone()]).await;
    let mut cfg = config(&up.url());
    cfg.proxy.stamp_key_file = Some(key_file("valid"));
    // The detector panics if it is asked anything.
    let proxy = start_proxy(&cfg, fake_firewall(FakeDetector::MustNotRun)).await;
    let resp = send(&client(), &proxy, &e).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(
        (&h["x-ragwall-stamped"], &h["x-ragwall-scanned"]),
        (&"4".parse().expect("hv"), &"0".parse().expect("hv"))
    );
    assert_eq!(h["x-ragwall-quarantined"], "1");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(
        point_ids(&v),
        [
            5.into(),
            6.into(),
            Value::from("6a1b7f5e-3c1d-4d8e-9f00-2b9e0c1d2e3f")
        ]
    );
    let tag = &v["result"]["points"][0]["payload"]["ragwall"];
    assert_eq!(
        (tag["action"].as_str(), tag["stamped"].as_bool()),
        (Some("tag"), Some(true))
    );
    // Allowed stamped points come back exactly as stored, stamp included.
    assert_eq!(v["result"]["points"][1], e.response["result"]["points"][2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_copied_or_stale_stamps_are_rescanned() {
    let key = StampKey::new(KEY, "test").expect("key");
    let other = StampKey::new(b"another-key-that-ragwall-does-not-hold!!", "t").expect("key");
    let e = stamped(|id, payload| match id.as_u64() {
        // Signed with a key the proxy does not hold, claiming "allow".
        Some(4) => Some(sign(&other, payload, Action::Allow, "docs")),
        // A genuine stamp for different text.
        Some(5) => {
            let mut clean = payload.clone();
            clean.insert("text".into(), "harmless text".into());
            Some(sign(&key, &clean, Action::Allow, "docs"))
        }
        // A genuine stamp for another collection.
        Some(6) => Some(sign(&key, payload, Action::Allow, "other")),
        // Genuine and current.
        _ => Some(sign(&key, payload, Action::Allow, "docs")),
    });
    let up = Replayer::with(vec![e.clone()]).await;
    let mut cfg = config(&up.url());
    cfg.proxy.stamp_key_file = Some(key_file("forged"));
    // Anything scanned scores 0.9: quarantined.
    let proxy = start_proxy(&cfg, fake_firewall(FakeDetector::Score(0.9))).await;
    let resp = send(&client(), &proxy, &e).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ragwall-scanned"], "3");
    assert_eq!(resp.headers()["x-ragwall-stamped"], "1");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(
        point_ids(&v),
        [Value::from("6a1b7f5e-3c1d-4d8e-9f00-2b9e0c1d2e3f")]
    );

    // Without the key configured, no stamp is trusted at all.
    let proxy = start_proxy(&config(&up.url()), fake_firewall(FakeDetector::Score(0.9))).await;
    let v: Value = send(&client(), &proxy, &e)
        .await
        .json()
        .await
        .expect("json");
    assert!(point_ids(&v).is_empty(), "{v}");
}
