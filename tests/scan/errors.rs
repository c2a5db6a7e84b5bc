//! What goes wrong is said clearly, exits non-zero, and leaves nothing half-written.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

use ragwall::scan::{Mode, ScanError, exit_status, scan_collection};
use ragwall::stamp::PAYLOAD_KEY;

use super::server::{Key, TestServer};
use super::{STAMP, checkpoints, config, job, scanner, seed};
use crate::common;

/// Runs the binary in `dir` (checkpoints under `dir/checkpoints`).
fn ragwall(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ragwall"))
        .args(args)
        .current_dir(common::root())
        .env("ORT_DYLIB_PATH", common::ort())
        .env("RAGWALL_CFG__SCAN__CHECKPOINT_DIR", dir.join("checkpoints"))
        .env_remove("RAGWALL_CONFIG")
        .env_remove("RAGWALL_STAMP_KEY")
        .output()
        .expect("ragwall runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Nothing but what was there before: no report, no checkpoint.
fn nothing_written(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn an_unreachable_qdrant_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = dir.path().join("report.json");
    let o = ragwall(
        dir.path(),
        &[
            "scan",
            "qdrant",
            "--url",
            &url,
            "--collection",
            "docs",
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("cannot reach Qdrant at {url}")),
        "{}",
        stderr(&o)
    );
    nothing_written(dir.path());
}

#[test]
fn a_wrong_api_key_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = TestServer::start(seed(2), Some("the-right-key-0123456789"));
    let out = dir.path().join("report.json");
    let o = ragwall(
        dir.path(),
        &[
            "scan",
            "qdrant",
            "--url",
            &server.url(),
            "--collection",
            "docs",
            "--api-key",
            "wrong",
            "--quarantine",
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("refused the API key"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("wrong"),
        "the key is not echoed: {}",
        stderr(&o)
    );
    assert!(server.state().writes().is_empty());
    nothing_written(dir.path());

    // The right key passes the same interceptor.
    let o = ragwall(
        dir.path(),
        &[
            "scan",
            "qdrant",
            "--url",
            &server.url(),
            "--collection",
            "docs",
            "--api-key",
            "the-right-key-0123456789",
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.exists() && out.with_extension("md").exists());
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.contains("# ragwall scan report"),
        "the summary is printed: {md}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_collection_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let server = TestServer::start(seed(2), None);
    let out = dir.path().join("report.json");
    let mut j = job(
        &server.url(),
        Mode {
            stamp: true,
            quarantine: true,
        },
        &out,
    );
    j.collection = "nope".into();
    let err = scan_collection(scanner(&cfg), &cfg.scan, &j, &AtomicBool::new(false))
        .await
        .expect_err("missing");
    assert!(
        matches!(err, ScanError::MissingCollection { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("collection \"nope\" does not exist on {}", server.url())
    );
    assert!(
        server.state().writes().is_empty(),
        "no quarantine collection created"
    );
    assert!(!out.exists());
    assert_eq!(checkpoints(&cfg), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_without_text_fields_are_reported_not_stamped() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let store = seed(3);
    store
        .lock()
        .expect("lock")
        .collections
        .get_mut("docs")
        .expect("docs")
        .insert(
            Key::Num(50),
            serde_json::json!({"page": 3, "ok": true}),
            vec![0.0; 4],
        );
    let server = TestServer::start(store, None);
    let out = dir.path().join("report.json");
    let report = scan_collection(
        scanner(&cfg),
        &cfg.scan,
        &job(&server.url(), STAMP, &out),
        &AtomicBool::new(false),
    )
    .await
    .expect("scan completes");
    assert_eq!(
        exit_status(&report),
        2,
        "unscanned points make the exit status 2"
    );
    assert_eq!(report.tally.unscanned, 1);
    assert_eq!(report.tally.errors[0].id, serde_json::json!(50));
    assert_eq!(report.tally.errors[0].kind, "no_text_fields");
    let s = server.state();
    let docs = &s.collections["docs"];
    assert!(
        !docs.points[&Key::Num(50)].payload.contains_key(PAYLOAD_KEY),
        "never stamped"
    );
    assert_eq!(
        docs.points
            .values()
            .filter(|p| p.payload.contains_key(PAYLOAD_KEY))
            .count(),
        5
    );
    let md = std::fs::read_to_string(out.with_extension("md")).expect("md");
    assert!(
        md.contains("## Not scanned") && md.contains("no_text_fields"),
        "{md}"
    );
}

#[test]
fn stamping_without_a_key_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = TestServer::start(seed(2), None);
    let o = ragwall(
        dir.path(),
        &[
            "scan",
            "qdrant",
            "--url",
            &server.url(),
            "--collection",
            "docs",
            "--stamp",
            "--out",
            dir.path().join("r.json").to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--stamp needs the stamp key"),
        "{}",
        stderr(&o)
    );
    assert!(server.state().calls.is_empty(), "refused before connecting");
    nothing_written(dir.path());
}

#[test]
fn non_utf8_files_fail_before_any_output() {
    let dir = tempfile::tempdir().expect("tmp");
    let input = tempfile::tempdir().expect("tmp");
    let good = input.path().join("good.jsonl");
    std::fs::write(&good, "{\"id\":1,\"text\":\"Refunds take five days.\"}\n").expect("w");
    let bad = input.path().join("latin1.md");
    std::fs::write(&bad, b"# Caf\xe9 menu\n").expect("w");
    let out = dir.path().join("clean.jsonl");
    let q = dir.path().join("quarantine.jsonl");
    let o = ragwall(
        dir.path(),
        &[
            "scan",
            "files",
            good.to_str().expect("utf8"),
            bad.to_str().expect("utf8"),
            "--out",
            out.to_str().expect("utf8"),
            "--quarantine",
            q.to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("latin1.md: not valid UTF-8 (line 1, byte offset 5)"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    nothing_written(dir.path());
}
