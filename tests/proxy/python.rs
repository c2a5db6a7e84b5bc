//! The real Python `qdrant-client` (PyPI, installed in .venv by scripts/setup.sh) against the
//! proxy in front of the replaying upstream: its calls succeed and the injected points never
//! come back untagged.

use serde_json::Value;

use super::{Replayer, config, firewall, start_proxy};
use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_qdrant_client_works_through_the_proxy() {
    let python = common::root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs qdrant-client)",
        python.display()
    );
    let up = Replayer::start().await;
    let proxy = start_proxy(&config(&up.url()), firewall()).await;
    let script = common::root().join("tests/proxy/qdrant_client_check.py");
    let url = proxy.url("");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .arg(&script)
            .arg(url)
            .env("NO_PROXY", "*")
            .output()
    })
    .await
    .expect("joined")
    .expect("python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qdrant-client failed:\n{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    for call in [
        "search",
        "query_points",
        "scroll",
        "scroll_page2",
        "retrieve",
    ] {
        let ids = v[call]["ids"]
            .as_array()
            .unwrap_or_else(|| panic!("{call}: {v}"));
        let tags = &v[call]["tags"];
        for injected in [3, 4, 5] {
            let key = injected.to_string();
            assert!(
                !ids.contains(&injected.into()) || tags[&key]["action"] == "tag",
                "{call}: injected point {injected} came back untagged: {v}"
            );
        }
        for plain in [1, 2, 6] {
            assert!(
                tags.get(plain.to_string()).is_none(),
                "{call}: plain point {plain} tagged"
            );
        }
    }
    let ids = |call: &str| v[call]["ids"].as_array().cloned().unwrap_or_default();
    assert!(ids("search").contains(&1.into()) && ids("search").contains(&2.into()));
    assert!(ids("query_points").contains(&1.into()));
    assert!(ids("scroll").contains(&1.into()) && ids("scroll").contains(&2.into()));
    assert_eq!(v["scroll"]["next"], 4, "scroll paging survives filtering");
    assert!(ids("scroll_page2").contains(&6.into()));
    assert_eq!(
        v["scroll_page2"]["payloads"]["6"]["chunk"]["body"],
        "Nested payload field holding text."
    );
    // Every request the client made reached Qdrant through the proxy.
    assert!(up.seen().len() >= 5, "{:?}", up.seen());
}
