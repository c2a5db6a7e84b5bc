//! Collection scans: stamping, resuming, quarantine without loss, dry run.

use std::sync::atomic::AtomicBool;

use serde_json::Value;

use ragwall::chunk::ChunkId;
use ragwall::policy::Action;
use ragwall::scan::{Mode, exit_status, scan_collection};
use ragwall::stamp::{PAYLOAD_KEY, Stamp};

use super::server::{Key, TestServer};
use super::{HIDDEN_ID, OVERRIDE_ID, STAMP, checkpoints, config, job, scanner, seed};

fn obj(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn flagged(key: &Key) -> bool {
    matches!(key, Key::Num(OVERRIDE_ID)) || matches!(key, Key::Uuid(u) if u == HIDDEN_ID)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_scan_stamps_every_point_and_the_proxy_trusts_the_stamps() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let scanner = scanner(&cfg);
    let server = TestServer::start(seed(10), None);
    let out = dir.path().join("report.json");
    let stop = AtomicBool::new(false);

    let report = scan_collection(
        scanner.clone(),
        &cfg.scan,
        &job(&server.url(), STAMP, &out),
        &stop,
    )
    .await
    .expect("scan");
    assert!(report.complete);
    assert_eq!(exit_status(&report), 0);
    let t = &report.tally;
    assert_eq!(
        (t.points, t.unscanned, t.stamps_written, t.batches),
        (12, 0, 12, 3)
    );
    assert_eq!(
        t.count(Action::Allow),
        10,
        "benign points are allowed: {:?}",
        t.flagged
    );
    assert_eq!(t.count(Action::Quarantine) + t.count(Action::Block), 2);
    assert_eq!(checkpoints(&cfg), 0, "a complete scan leaves no checkpoint");

    // Every stamp is what the proxy trusts, whatever the order of the payload's keys (REST keeps
    // insertion order, gRPC has none): the proxy's own Scanner decides from the stamp alone.
    {
        let state = server.state();
        let docs = &state.collections["docs"];
        assert_eq!(docs.points.len(), 12, "stamping moves nothing");
        for (key, p) in &docs.points {
            let payload = obj(p.json());
            let stamp = Stamp::from_value(&payload[PAYLOAD_KEY]).expect("stamped");
            assert_eq!(stamp.collection, "docs");
            assert_eq!(stamp.policy, cfg.policy.version);
            if flagged(key) {
                assert!(stamp.action >= Action::Quarantine, "{key:?}: {stamp:?}");
            } else {
                assert_eq!(stamp.action, Action::Allow, "{key:?}: {stamp:?}");
            }
            let entries: Vec<(String, Value)> = payload.into_iter().collect();
            let payload: serde_json::Map<String, Value> = entries.into_iter().rev().collect();
            let d = scanner
                .decide(Some("docs"), &[(ChunkId::from("x"), &payload)], true)
                .expect("decide");
            assert!(
                d[0].stamped,
                "{key:?}: the proxy trusts the stamp ({:?})",
                d[0].stamp_mismatch
            );
            assert_eq!(d[0].action, stamp.action);
        }
    }

    let json: Value = serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("json");
    assert_eq!(json["source"]["collection"], "docs");
    assert_eq!(json["mode"], "stamp");
    assert_eq!(json["tally"]["points"], 12);
    assert!(
        json["detector"]
            .as_str()
            .expect("detector")
            .contains("onnx:")
    );
    assert!(json["throughput"]["chunks_per_sec"].as_f64().expect("rate") > 0.0);
    let md = std::fs::read_to_string(out.with_extension("md")).expect("markdown");
    assert!(md.contains("## Score histogram") && md.contains("## Slowest batches"));

    // Stamps are written only where they change: a second scan trusts them and writes nothing.
    let before = server.state().count("set_payload");
    let again = scan_collection(scanner, &cfg.scan, &job(&server.url(), STAMP, &out), &stop)
        .await
        .expect("rescan");
    assert_eq!(server.state().count("set_payload"), before);
    let t = &again.tally;
    assert_eq!(
        (
            t.stamps_written,
            t.stamps_unchanged,
            t.trusted_stamps,
            t.chunks
        ),
        (0, 12, 12, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_scan_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let scanner = scanner(&cfg);
    let server = TestServer::start(seed(10), None);
    let out = dir.path().join("report.json");
    let stop = AtomicBool::new(false);
    server.state().fail.push(("scroll", 3));

    let err = scan_collection(
        scanner.clone(),
        &cfg.scan,
        &job(&server.url(), STAMP, &out),
        &stop,
    )
    .await
    .expect_err("the third page fails");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(!out.exists(), "no report for a scan that failed");
    assert_eq!(checkpoints(&cfg), 1);
    let stamped = |s: &super::server::State| {
        s.collections["docs"]
            .points
            .values()
            .filter(|p| p.payload.contains_key(PAYLOAD_KEY))
            .count()
    };
    assert_eq!(stamped(&server.state()), 8, "two pages were done");
    let failed_offset = server
        .state()
        .calls
        .iter()
        .filter(|c| c.method == "scroll")
        .nth(2)
        .map(|c| c.detail.clone());

    let report = scan_collection(scanner, &cfg.scan, &job(&server.url(), STAMP, &out), &stop)
        .await
        .expect("resumed scan");
    assert!(report.complete);
    let state = server.state();
    let scrolls: Vec<&str> = state
        .calls
        .iter()
        .filter(|c| c.method == "scroll")
        .map(|c| c.detail.as_str())
        .collect();
    assert_eq!(
        scrolls.len(),
        4,
        "3 scrolls, then the resumed one: {scrolls:?}"
    );
    assert_eq!(
        Some(scrolls[3]),
        failed_offset.as_deref(),
        "resumed where it stopped"
    );
    assert_ne!(scrolls[3], "None");
    assert_eq!(stamped(&state), 12);
    assert_eq!(state.count("set_payload"), 12, "nothing stamped twice");
    let t = &report.tally;
    assert_eq!(
        (t.points, t.batches, t.stamps_written),
        (12, 3, 12),
        "the report covers both runs"
    );
    assert_eq!(checkpoints(&cfg), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_copies_before_deleting_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let scanner = scanner(&cfg);
    let store = seed(6);
    let original = store.lock().expect("lock").collections["docs"].clone();
    let server = TestServer::start(store, None);
    let out = dir.path().join("report.json");
    let stop = AtomicBool::new(false);
    let mode = Mode {
        stamp: true,
        quarantine: true,
    };
    let quarantine = format!("docs{}", cfg.scan.quarantine_suffix);

    // 1. The copy fails: nothing is deleted.
    server.state().fail.push(("upsert", 1));
    scan_collection(
        scanner.clone(),
        &cfg.scan,
        &job(&server.url(), mode, &out),
        &stop,
    )
    .await
    .expect_err("copy fails");
    {
        let s = server.state();
        assert_eq!(s.count("delete"), 0);
        assert_eq!(s.collections["docs"].points.len(), 8);
        let q = &s.collections[&quarantine];
        assert_eq!(
            q.vectors, original.vectors,
            "created with the same vector config"
        );
        assert!(q.points.is_empty());
    }

    // 2. The delete fails after the copy: the flagged points are in both collections.
    server.state().fail.push(("delete", 1));
    scan_collection(
        scanner.clone(),
        &cfg.scan,
        &job(&server.url(), mode, &out),
        &stop,
    )
    .await
    .expect_err("delete fails");
    {
        let s = server.state();
        assert_eq!(s.collections["docs"].points.len(), 8, "nothing deleted");
        assert_eq!(
            s.collections[&quarantine].points.len(),
            2,
            "both flagged points copied"
        );
    }

    // 3. A rerun completes the move.
    let report = scan_collection(scanner, &cfg.scan, &job(&server.url(), mode, &out), &stop)
        .await
        .expect("rerun");
    assert!(report.complete);
    assert_eq!(report.tally.moved, 2);
    assert_eq!(
        report.tally.points, 8,
        "each point counted once over the three runs"
    );
    let s = server.state();
    let docs = &s.collections["docs"];
    let q = &s.collections[&quarantine];
    assert_eq!(docs.points.len(), 6, "benign points stay");
    assert!(docs.points.keys().all(|k| !flagged(k)));
    assert_eq!(q.points.len(), 2);
    for (key, p) in &q.points {
        assert!(flagged(key), "{key:?}");
        let before = &original.points[key];
        assert_eq!(p.vectors, before.vectors, "vectors copied");
        let mut payload = obj(p.json());
        let stamp =
            Stamp::from_value(&payload.shift_remove(PAYLOAD_KEY).expect("stamp")).expect("stamp");
        assert!(stamp.action >= Action::Quarantine);
        assert_eq!(Value::Object(payload), before.json(), "payload copied");
    }
    // Every delete came after an upsert of the same ids into the quarantine collection.
    for (i, c) in s
        .calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.method == "delete")
    {
        assert!(
            s.calls[..i].iter().any(|u| u.method == "upsert"
                && u.collection == quarantine
                && u.detail == c.detail),
            "delete {} without a prior copy",
            c.detail
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_writes_nothing_to_qdrant() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let store = seed(5);
    let original = store.lock().expect("lock").collections.clone();
    let server = TestServer::start(store, None);
    let out = dir.path().join("report.json");
    let report = scan_collection(
        scanner(&cfg),
        &cfg.scan,
        &job(&server.url(), Mode::DRY_RUN, &out),
        &AtomicBool::new(false),
    )
    .await
    .expect("scan");
    assert!(report.complete);
    let s = server.state();
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    assert_eq!(s.collections, original);
    let ids: Vec<&Value> = report.tally.flagged.iter().map(|f| &f.id).collect();
    assert_eq!(ids, [&Value::from(OVERRIDE_ID), &Value::from(HIDDEN_ID)]);
    let reasons = &report.tally.flagged[1].reasons;
    assert!(
        reasons.iter().any(|r| r == "finding.tag_characters"),
        "hidden text is named: {reasons:?}"
    );
    assert_eq!(report.mode, "dry-run");
    assert!(out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_ends_after_the_current_batch_and_the_rerun_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let scanner = scanner(&cfg);
    let server = TestServer::start(seed(30), None);
    let out = dir.path().join("report.json");
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Ctrl-C arrives while the first page is being classified.
    let (flag, store) = (stop.clone(), server.store.clone());
    let watcher = tokio::spawn(async move {
        while store.lock().map(|s| s.count("scroll")).unwrap_or(0) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let report = scan_collection(
        scanner.clone(),
        &cfg.scan,
        &job(&server.url(), STAMP, &out),
        &stop,
    )
    .await
    .expect("a stop is not an error");
    watcher.await.expect("watcher");
    assert!(!report.complete);
    assert_eq!(exit_status(&report), 130);
    let done = report.tally.points;
    assert!(
        done > 0 && done < 32 && done % 4 == 0,
        "whole pages only: {done}"
    );
    let json: Value = serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("json");
    assert_eq!(json["complete"], false);
    assert_eq!(checkpoints(&cfg), 1);

    let report = scan_collection(
        scanner,
        &cfg.scan,
        &job(&server.url(), STAMP, &out),
        &AtomicBool::new(false),
    )
    .await
    .expect("rerun");
    assert!(report.complete);
    assert_eq!(report.tally.points, 32);
    assert_eq!(
        server.state().count("set_payload"),
        32,
        "every point stamped once"
    );
}
