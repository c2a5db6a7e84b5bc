//! Proxy benchmark driver, run by `scripts/bench_proxy.sh`: the latency `ragwall proxy` adds to
//! a 10-point Qdrant search result (p50/p99) and its throughput relative to calling the upstream
//! directly, with unstamped payloads (every point scanned by the model) and with stamped ones
//! (HMAC check only). Prints one JSON object.
//!
//! The upstream is a synthetic Qdrant on 127.0.0.1 answering `POST …/points/search` with 10
//! points in Qdrant 1.18's shape. Every response has texts never seen before, so the
//! classifier's score cache never hides the model's cost.
//!
//! `cargo run --release --example bench_proxy -- [REQUESTS] [CONCURRENCY] [SECONDS]`; the
//! `[proxy]` config comes from `RAGWALL_CFG__PROXY__*` (e.g. `RAGWALL_CFG__PROXY__TEXT_FIELDS`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use serde_json::{Value, json};

use ragwall::config::Config;
use ragwall::proxy::payload::{FieldPath, text_fields};
use ragwall::stamp::{Expected, PAYLOAD_KEY, Stamp, StampKey, content_sha256};
use ragwall::{Action, Firewall, detect};

const KEY: &[u8] = b"bench-stamp-key-0123456789abcdef-0123456789";

struct Upstream {
    counter: AtomicU64,
    /// `(detector id, policy version)` to stamp with; `None` = unstamped.
    stamp: Option<(StampKey, String, String)>,
    /// The proxy's text fields for `docs`, so stamps hash what the proxy hashes.
    fields: Vec<FieldPath>,
}

fn text(n: u64, i: usize) -> String {
    format!(
        "Release note {n}.{i}: the shipping service now batches label printing, cutting the \
         average fulfilment time for standard orders by about {} minutes.",
        (n + i as u64) % 50
    )
}

async fn search(State(u): State<Arc<Upstream>>) -> axum::Json<Value> {
    let n = u.counter.fetch_add(1, Ordering::Relaxed);
    let points: Vec<Value> = (0..10)
        .map(|i| {
            let t = text(n, i);
            let source = format!("notes/{n}.md");
            let mut payload = json!({"text": t, "source": source});
            if let Some((key, detector, policy)) = &u.stamp {
                let map = payload.as_object().cloned().unwrap_or_default();
                let fields = text_fields(&map, &u.fields, Some(PAYLOAD_KEY));
                let sha = content_sha256(fields.iter().map(|f| (f.path.as_str(), f.text.as_str())));
                let s = Stamp::sign(
                    key,
                    Action::Allow,
                    0.01,
                    vec![],
                    Expected {
                        sha256: &sha,
                        detector,
                        policy,
                        collection: "docs",
                    },
                );
                payload["ragwall"] = s.to_value();
            }
            json!({"id": n * 10 + i as u64, "version": 1, "score": 1.0 - i as f64 * 0.01,
                   "payload": payload})
        })
        .collect();
    axum::Json(json!({"result": points, "status": "ok", "time": 0.0001}))
}

async fn serve(app: axum::Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

async fn upstream(stamp: Option<(StampKey, String, String)>, fields: Vec<FieldPath>) -> SocketAddr {
    let state = Arc::new(Upstream {
        counter: AtomicU64::new(0),
        stamp,
        fields,
    });
    serve(
        axum::Router::new()
            .route(
                "/collections/docs/points/search",
                axum::routing::post(search),
            )
            .with_state(state),
    )
    .await
}

async fn proxy(cfg: &Config, fw: Arc<Firewall>, up: SocketAddr) -> SocketAddr {
    let mut cfg = cfg.clone();
    cfg.proxy.upstream = format!("http://{up}");
    let p = Arc::new(ragwall::proxy::Proxy::new(&cfg, fw).expect("proxy"));
    serve(p.router()).await
}

const BODY: &str = r#"{"vector":[0.9,0.1,0.0,0.0],"limit":10,"with_payload":true}"#;

async fn one(c: &reqwest::Client, url: &str) -> Duration {
    let t = Instant::now();
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), 200, "{url}");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["result"].as_array().map(Vec::len), Some(10), "{v}");
    t.elapsed()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// (p50 ms, p99 ms) of `n` sequential requests.
async fn latency(c: &reqwest::Client, addr: SocketAddr, n: usize) -> (f64, f64) {
    let url = format!("http://{addr}/collections/docs/points/search");
    for _ in 0..5 {
        one(c, &url).await;
    }
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        ms.push(one(c, &url).await.as_secs_f64() * 1e3);
    }
    (percentile(&mut ms, 0.5), percentile(&mut ms, 0.99))
}

/// Requests per second with `conc` clients for `secs`.
async fn throughput(c: &reqwest::Client, addr: SocketAddr, conc: usize, secs: f64) -> f64 {
    let url = Arc::new(format!("http://{addr}/collections/docs/points/search"));
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (c, url, done) = (c.clone(), url.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < end {
                    one(&c, &url).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(Ok(200), |s| s.parse())?;
    let conc: usize = args.get(2).map_or(Ok(8), |s| s.parse())?;
    let secs: f64 = args.get(3).map_or(Ok(5.0), |s| s.parse())?;

    let key_file = std::env::temp_dir().join(format!("ragwall-bench-key-{}", std::process::id()));
    std::fs::write(&key_file, KEY)?;
    let mut cfg = Config::load(None)?;
    cfg.proxy.stamp_key_file = Some(key_file.clone());
    let fw = Arc::new(Firewall::new(&cfg, detect::from_config(&cfg)?.detector)?);
    let stamp = Some((
        StampKey::new(KEY, "bench")?,
        fw.detector_id().to_owned(),
        fw.policy().version.clone(),
    ));

    let fields = cfg
        .proxy
        .fields_for(Some("docs"))
        .iter()
        .map(|p| FieldPath::parse(p).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let plain_up = upstream(None, fields.clone()).await;
    let stamped_up = upstream(stamp, fields).await;
    let plain_px = proxy(&cfg, fw.clone(), plain_up).await;
    let stamped_px = proxy(&cfg, fw.clone(), stamped_up).await;
    let c = reqwest::Client::builder().no_proxy().build()?;

    let direct = latency(&c, plain_up, n).await;
    let unstamped = latency(&c, plain_px, n).await;
    let stamped = latency(&c, stamped_px, n).await;
    let tp_direct = throughput(&c, plain_up, conc, secs).await;
    let tp_unstamped = throughput(&c, plain_px, conc, secs).await;
    let tp_stamped = throughput(&c, stamped_px, conc, secs).await;
    let _ = std::fs::remove_file(key_file);

    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let out = json!({
        "points_per_response": 10,
        "requests": n,
        "concurrency": conc,
        "seconds": secs,
        "detector": fw.detector_id(),
        "direct_ms": {"p50": r3(direct.0), "p99": r3(direct.1)},
        "unstamped": {
            "p50_ms": r3(unstamped.0), "p99_ms": r3(unstamped.1),
            "added_p50_ms": r3(unstamped.0 - direct.0), "added_p99_ms": r3(unstamped.1 - direct.1),
            "rps": r3(tp_unstamped), "throughput_ratio": r3(tp_unstamped / tp_direct),
        },
        "stamped": {
            "p50_ms": r3(stamped.0), "p99_ms": r3(stamped.1),
            "added_p50_ms": r3(stamped.0 - direct.0), "added_p99_ms": r3(stamped.1 - direct.1),
            "rps": r3(tp_stamped), "throughput_ratio": r3(tp_stamped / tp_direct),
        },
        "direct_rps": r3(tp_direct),
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
