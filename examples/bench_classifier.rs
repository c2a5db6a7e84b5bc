//! Classifier benchmark driver, run by `scripts/bench_classifier.py` (which also runs the bare
//! Python onnxruntime + tokenizers baseline on the same model, texts, batch size and threads,
//! and prints the ratio). Prints one JSON object.
//!
//! `cargo run --release --example bench_classifier -- MODEL_DIR TEXTS.jsonl BATCH THREADS`

use std::io::BufRead;
use std::time::Instant;

use ragwall::classifier::Classifier;
use ragwall::classifier::manifest::ModelFiles;
use ragwall::config::ClassifierConfig;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 5,
        "usage: bench_classifier MODEL_DIR TEXTS.jsonl BATCH THREADS"
    );
    let (dir, texts_path) = (&args[1], &args[2]);
    let batch: usize = args[3].parse()?;
    let threads: usize = args[4].parse()?;
    let texts: Vec<String> = std::io::BufReader::new(std::fs::File::open(texts_path)?)
        .lines()
        .map(|l| {
            Ok(serde_json::from_str::<serde_json::Value>(&l?)?["text"]
                .as_str()
                .unwrap_or("")
                .to_owned())
        })
        .collect::<anyhow::Result<_>>()?;
    let files = ModelFiles::from_dir(std::path::Path::new(dir))?;
    let cfg = |cache: usize| ClassifierConfig {
        // one session with THREADS threads, like the Python side
        workers: 1,
        intra_threads: threads,
        max_batch: batch,
        batch_tokens: batch * 512,
        cache_entries: cache,
        ..ClassifierConfig::default()
    };
    let cold = Classifier::new(files.clone(), &cfg(0))?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    cold.score(&refs[..batch.min(refs.len())])?; // warm-up: session init, allocator arenas

    // Throughput: the same loop as the Python baseline, one batch at a time.
    let started = Instant::now();
    for group in refs.chunks(batch) {
        cold.score(group)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let stats = cold.stats();
    let windows = stats
        .queue
        .windows
        .load(std::sync::atomic::Ordering::Relaxed);
    let padded = stats
        .queue
        .padded_tokens
        .load(std::sync::atomic::Ordering::Relaxed);

    // Latency of a top-10 retrieval batch of 256-token chunks: cold, then cached.
    let long: Vec<String> = texts.chunks(2).map(|p| p.join(" ")).take(200).collect();
    let mut cold_ms = Vec::new();
    for group in long.chunks(10) {
        let g: Vec<&str> = group.iter().map(String::as_str).collect();
        let t = Instant::now();
        cold.score(&g)?;
        cold_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    drop(cold); // one session at a time, so peak RSS is that of one classifier
    let cached = Classifier::new(files, &cfg(65536))?;
    let mut warm_ms = Vec::new();
    for round in 0..2 {
        for group in long.chunks(10) {
            let g: Vec<&str> = group.iter().map(String::as_str).collect();
            let t = Instant::now();
            cached.score(&g)?;
            if round == 1 {
                warm_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let out = serde_json::json!({
        "chunks": refs.len(),
        "seconds": secs,
        "chunks_per_s": refs.len() as f64 / secs,
        "windows": windows,
        "padded_tokens": padded,
        "top10_256tok_cold_p50_ms": percentile(&mut cold_ms.clone(), 0.5),
        "top10_256tok_cold_p99_ms": percentile(&mut cold_ms, 0.99),
        "top10_256tok_cached_p50_ms": percentile(&mut warm_ms.clone(), 0.5),
        "top10_256tok_cached_p99_ms": percentile(&mut warm_ms, 0.99),
        "peak_rss_mib": peak_rss_kib() as f64 / 1024.0,
    });
    println!("{out}");
    Ok(())
}
