//! Benchmark of `ragwall serve`: `POST /v1/guard` with 10 chunks of ~256 tokens, cold (every
//! chunk new, so every chunk goes through the model) and warm (the same chunks again, so scores
//! come from the cache). Starts the service in-process on 127.0.0.1:0 with the default model,
//! runs a bounded load (a fixed number of requests per phase, with a time cap), prints requests/s
//! and p50/p99 latency per phase, and stops the service.
//!
//! `scripts/bench_serve.sh [--clients N] [--requests N] [--chunks N] [--tokens N]`
//! (or `cargo run --release --example bench_serve -- …` with ORT_DYLIB_PATH set).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ragwall::config::Config;
use ragwall::server::{App, serve};
use serde_json::{Value, json};

/// Longest a phase may run, whatever `--requests` says.
const PHASE_CAP: Duration = Duration::from_secs(300);

struct Opts {
    clients: usize,
    requests: usize,
    chunks: usize,
    tokens: usize,
}

fn parse_args() -> anyhow::Result<Opts> {
    let mut o = Opts {
        clients: 4,
        requests: 100,
        chunks: 10,
        tokens: 256,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || -> anyhow::Result<usize> {
            Ok(args
                .next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))?
                .parse()?)
        };
        match a.as_str() {
            "--clients" => o.clients = value()?,
            "--requests" => o.requests = value()?,
            "--chunks" => o.chunks = value()?,
            "--tokens" => o.tokens = value()?,
            _ => anyhow::bail!("unknown argument {a} (--clients, --requests, --chunks, --tokens)"),
        }
    }
    Ok(o)
}

const WORDS: [&str; 40] = [
    "the",
    "customer",
    "order",
    "was",
    "shipped",
    "from",
    "our",
    "warehouse",
    "in",
    "march",
    "and",
    "invoice",
    "payment",
    "terms",
    "are",
    "thirty",
    "days",
    "after",
    "delivery",
    "please",
    "contact",
    "support",
    "if",
    "your",
    "account",
    "shows",
    "a",
    "different",
    "balance",
    "than",
    "expected",
    "refunds",
    "take",
    "five",
    "business",
    "to",
    "appear",
    "on",
    "statement",
    "report",
];

/// A text of about `tokens` WordPiece tokens, unique for `seed`.
fn text(seed: usize, tokens: usize, tokenizer: &tokenizers::Tokenizer) -> String {
    let mut s = format!("Record {seed}.");
    let mut i = (seed as u64).wrapping_mul(2654435761);
    // Bounded at 4 words per wanted token, far more than any tokenizer needs.
    for _ in 0..tokens / 4 + 1 {
        for _ in 0..16 {
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s.push(' ');
            s.push_str(WORDS[((i >> 33) % WORDS.len() as u64) as usize]);
        }
        let n = tokenizer
            .encode(s.as_str(), true)
            .map(|e| e.len())
            .unwrap_or(usize::MAX);
        if n >= tokens {
            break;
        }
    }
    s
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Phase {
    name: &'static str,
    ok: usize,
    errors: usize,
    wall: Duration,
    latencies_ms: Vec<f64>,
}

async fn run_phase(
    name: &'static str,
    url: &str,
    clients: usize,
    bodies: Arc<Vec<Value>>,
) -> Phase {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, next, bodies) = (
            client.clone(),
            url.to_owned(),
            Arc::clone(&next),
            Arc::clone(&bodies),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = (0usize, 0usize, Vec::new());
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bodies.len() || started.elapsed() > PHASE_CAP {
                    return out;
                }
                let t = Instant::now();
                let r = client.post(&url).json(&bodies[i]).send().await;
                let ok = match r {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if ok {
                    out.0 += 1;
                    out.2.push(t.elapsed().as_secs_f64() * 1e3);
                } else {
                    out.1 += 1;
                }
            }
        }));
    }
    let mut phase = Phase {
        name,
        ok: 0,
        errors: 0,
        wall: Duration::ZERO,
        latencies_ms: Vec::new(),
    };
    for t in tasks {
        if let Ok((ok, errors, lat)) = t.await {
            phase.ok += ok;
            phase.errors += errors;
            phase.latencies_ms.extend(lat);
        }
    }
    phase.wall = started.elapsed();
    phase.latencies_ms.sort_by(f64::total_cmp);
    phase
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_args()?;
    let mut cfg = Config::load(None)?;
    // The bench measures the service, not its limits.
    cfg.server.max_concurrent_requests = o.clients.max(1) * 2;
    cfg.server.deadline_ms = 600_000;
    let detectors = ragwall::detect::from_config(&cfg)?;
    let classifier = detectors
        .classifier
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the bench needs the classifier enabled"))?;
    let model_dir = match &cfg.classifier.model_dir {
        Some(d) => d.clone(),
        None => ragwall::classifier::default_model_dir()
            .ok_or_else(|| anyhow::anyhow!("default model not found"))?,
    };
    let mut tokenizer = tokenizers::Tokenizer::from_file(model_dir.join("tokenizer.json"))
        .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    tokenizer
        .with_truncation(None)
        .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
    let app = App::new(&cfg, detectors)?;
    let warm = app.clone();
    tokio::task::spawn_blocking(move || warm.warm_up()).await??;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/v1/guard", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(app, listener, async {
        let _ = stop_rx.await;
    }));

    let request = |first: usize| -> Value {
        let chunks: Vec<Value> = (0..o.chunks)
            .map(|k| json!({"id": k, "text": text(first + k, o.tokens, &tokenizer)}))
            .collect();
        json!({ "chunks": chunks })
    };
    let cold: Vec<Value> = (0..o.requests)
        .map(|r| request(1_000_000 + r * o.chunks))
        .collect();
    let tokens: usize = cold[0]["chunks"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter_map(|x| x["text"].as_str())
                .map(|t| tokenizer.encode(t, true).map(|e| e.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    let repeated = request(7);
    let warm: Vec<Value> = (0..o.requests).map(|_| repeated.clone()).collect();
    // Score the repeated chunks once, so the warm phase measures cache hits only.
    reqwest::Client::new()
        .post(&url)
        .json(&repeated)
        .send()
        .await?
        .error_for_status()?;

    println!(
        "ragwall serve bench: POST /v1/guard, {} chunks x ~{} tokens ({} measured in request 1), \
         {} clients, {} requests per phase, model {} ({})",
        o.chunks,
        o.tokens,
        tokens,
        o.clients,
        o.requests,
        classifier.manifest().name,
        &classifier.manifest().model_sha256()[..12],
    );
    let phases = [
        run_phase("cold", &url, o.clients, Arc::new(cold)).await,
        run_phase("warm", &url, o.clients, Arc::new(warm)).await,
    ];
    println!(
        "{:<6} {:>9} {:>7} {:>9} {:>9} {:>9} {:>7}",
        "phase", "requests", "req/s", "chunks/s", "p50 ms", "p99 ms", "errors"
    );
    for p in &phases {
        let rps = p.ok as f64 / p.wall.as_secs_f64();
        println!(
            "{:<6} {:>9} {:>7.1} {:>9.1} {:>9.1} {:>9.1} {:>7}",
            p.name,
            p.ok,
            rps,
            rps * o.chunks as f64,
            percentile(&p.latencies_ms, 0.50),
            percentile(&p.latencies_ms, 0.99),
            p.errors
        );
    }
    let stats = classifier.stats();
    println!(
        "classifier: cache hits {}, misses {}, batches {}, windows {}",
        stats.cache_hits.load(std::sync::atomic::Ordering::Relaxed),
        stats
            .cache_misses
            .load(std::sync::atomic::Ordering::Relaxed),
        stats
            .queue
            .batches
            .load(std::sync::atomic::Ordering::Relaxed),
        stats
            .queue
            .windows
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let _ = stop_tx.send(());
    server.await??;
    Ok(())
}
