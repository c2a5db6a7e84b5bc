//! Offline-scanner benchmark, run by `scripts/bench_scan.sh`: chunks per second of a
//! `ragwall scan qdrant` over a whole collection (default 10 000 points, one ~128-token text
//! each) with the default model, against the in-memory Qdrant gRPC server of the tests
//! (`tests/scan/server.rs`) on 127.0.0.1. Prints one JSON object.
//!
//! Every text is different, so the classifier's score cache never hides the model's cost. The
//! config comes from `RAGWALL_CONFIG` / `RAGWALL_CFG__*` like the binary's (e.g.
//! `RAGWALL_CFG__CLASSIFIER__WORKERS=2`).
//!
//! `cargo run --release --example bench_scan -- [POINTS] [dry-run|stamp|quarantine]`

#[path = "../tests/scan/server.rs"]
mod server;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ragwall::config::Config;
use ragwall::proxy::scan::Scanner;
use ragwall::scan::{Mode, QdrantJob, scan_collection};
use ragwall::stamp::StampKey;
use ragwall::{Firewall, detect};

use server::{Collection, Key, TestServer};

/// chunks/s the scanner should reach on 2 cores.
const TARGET: f64 = 200.0;

const SENTENCES: [&str; 12] = [
    "The warehouse in {c} shipped {n} parcels last week, most of them standard orders for returning customers.",
    "Customers can change the delivery address until the label is printed, usually within two hours of ordering.",
    "Refund requests are reviewed by the billing team and paid back to the original payment method.",
    "Our support desk answers tickets in English, German and Spanish from eight in the morning until six.",
    "Invoice {n} lists the subscription fee, the per-seat charges and the applicable value added tax.",
    "The mobile app stores drafts locally and synchronises them the next time the device is online.",
    "Release {n} improves search relevance for product names with hyphens and accented characters.",
    "Administrators can export the audit trail as CSV for any period of up to ninety days.",
    "The {c} office hosts a quarterly meetup where customers share how they organise their catalogues.",
    "Passwords must be at least twelve characters long and are checked against known breached lists.",
    "Bulk imports accept spreadsheets with up to fifty thousand rows and report every rejected line.",
    "Scheduled reports are emailed as PDF attachments every Monday at seven in the account's time zone.",
];

const CITIES: [&str; 6] = ["Lisbon", "Osaka", "Denver", "Nairobi", "Oslo", "Lima"];

fn text(i: usize) -> String {
    (0..6)
        .map(|k| {
            SENTENCES[(i * 7 + k * 5) % SENTENCES.len()]
                .replace("{n}", &(i * 31 + k * 1009).to_string())
                .replace("{c}", CITIES[(i + k) % CITIES.len()])
        })
        .chain(std::iter::once(format!("See KB-{i}.")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let points: usize = args
        .get(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let mode = match args.get(2).map(String::as_str).unwrap_or("stamp") {
        "dry-run" => Mode::DRY_RUN,
        "stamp" => Mode {
            stamp: true,
            quarantine: false,
        },
        "quarantine" => Mode {
            stamp: true,
            quarantine: true,
        },
        other => anyhow::bail!("unknown mode {other:?} (dry-run, stamp, quarantine)"),
    };

    let config_path = std::env::var_os("RAGWALL_CONFIG");
    let mut cfg = Config::load(config_path.as_deref().map(Path::new))?;
    let dir = tempfile::tempdir()?;
    cfg.scan.checkpoint_dir = dir.path().join("checkpoints");
    let detectors = detect::from_config(&cfg)?;
    let tokens = match &cfg.classifier.model_dir {
        Some(d) => d.join("tokenizer.json"),
        None => ragwall::classifier::default_model_dir()
            .map(|d| d.join("tokenizer.json"))
            .ok_or_else(|| anyhow::anyhow!("default model not found"))?,
    };
    let mut tokenizer =
        tokenizers::Tokenizer::from_file(&tokens).map_err(|e| anyhow::anyhow!("{e}"))?;
    tokenizer
        .with_truncation(None)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_padding(None);
    let sample: Vec<String> = (0..200).map(text).collect();
    let lengths: Vec<usize> = sample
        .iter()
        .map(|t| {
            tokenizer
                .encode(t.as_str(), true)
                .map(|e| e.len())
                .unwrap_or(0)
        })
        .collect();
    let mean_tokens = lengths.iter().sum::<usize>() as f64 / lengths.len() as f64;
    let max_tokens = lengths.iter().copied().max().unwrap_or(0);

    let fw = Arc::new(Firewall::new(&cfg, detectors.detector)?);
    let key = StampKey::new(b"bench-stamp-key-0123456789abcdef-0123456789", "bench")?;
    let scanner = Arc::new(
        Scanner::new(fw, &cfg.proxy, cfg.normalize.clone(), Some(key))
            .map_err(|e| anyhow::anyhow!(e))?,
    );

    let store = server::store();
    {
        let mut c = Collection::dense(4);
        for i in 0..points {
            c.insert(
                Key::Num(i as u64 + 1),
                serde_json::json!({ "text": text(i) }),
                vec![0.1, 0.2, 0.3, 0.4],
            );
        }
        store
            .lock()
            .map_err(|_| anyhow::anyhow!("lock"))?
            .collections
            .insert("bench".into(), c);
    }
    let server = TestServer::start(store, None);
    let job = QdrantJob {
        url: server.url(),
        collection: "bench".into(),
        api_key: None,
        mode,
        out: None,
        progress: false,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let started = std::time::Instant::now();
    let report = rt.block_on(scan_collection(
        scanner,
        &cfg.scan,
        &job,
        &AtomicBool::new(false),
    ))?;
    let wall = started.elapsed().as_secs_f64();
    let chunks_per_sec = report.tally.chunks as f64 / wall;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let (workers, intra) = ragwall::classifier::runtime::plan_threads(
        cfg.classifier.workers,
        cfg.classifier.intra_threads,
        cfg.classifier.device.parse()?,
        cores,
    );
    let out = serde_json::json!({
        "points": report.tally.points,
        "chunks": report.tally.chunks,
        "mean_tokens_per_chunk": (mean_tokens * 10.0).round() / 10.0,
        "max_tokens_per_chunk": max_tokens,
        "mode": mode.label(),
        "batch_size": cfg.scan.batch_size,
        "classifier_workers_x_intra_threads": format!("{workers}x{intra}"),
        "cores": cores,
        "wall_seconds": (wall * 100.0).round() / 100.0,
        "classify_seconds": (report.tally.classify_seconds * 100.0).round() / 100.0,
        "chunks_per_sec": (chunks_per_sec * 10.0).round() / 10.0,
        "target_chunks_per_sec": TARGET,
        "meets_target": chunks_per_sec >= TARGET,
        "actions": report.tally.actions,
        "detector": report.detector,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
