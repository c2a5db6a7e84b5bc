//! `ragwall proxy` end to end: a replaying upstream serves the real Qdrant 1.18.3 exchanges
//! recorded in `tests/fixtures/qdrant/rest-exchanges-1.18.3.jsonl` byte for byte, the proxy runs
//! in-process on 127.0.0.1, and clients (reqwest, the real Python `qdrant-client`) talk to it.

mod connections;
mod exchanges;
mod failures;
mod ingest;
mod leaks;
mod paths;
mod python;
mod stamps;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;

use ragwall::config::Config;
use ragwall::detect::{DetectError, Detection, Detector};
use ragwall::firewall::Firewall;

use crate::common;

/// One recorded exchange.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Exchange {
    pub name: String,
    pub method: String,
    pub path: String,
    pub request: Value,
    pub status: u16,
    pub content_type: String,
    pub response: Value,
}

impl Exchange {
    /// The bytes the replayer sends for this exchange.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.response).expect("serializes")
    }
}

/// The recorded exchanges (`tests/fixtures/qdrant/`).
pub fn exchanges() -> Vec<Exchange> {
    let path = common::root().join("tests/fixtures/qdrant/rest-exchanges-1.18.3.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("exchange line"))
        .collect()
}

pub fn exchange(name: &str) -> Exchange {
    exchanges()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no exchange {name}"))
}

/// How the replayer encodes its bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Identity,
    Gzip,
    Deflate,
}

/// Replayer behaviour, changeable while it runs.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub encoding: Encoding,
    /// Send bodies with `transfer-encoding: chunked` in several pieces.
    pub chunked: bool,
    /// Answer every request with this (status, content type, body) instead.
    pub canned: Option<(u16, String, Vec<u8>)>,
}

/// A request the replayer received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug)]
struct ReplayState {
    exchanges: Vec<Exchange>,
    opts: Mutex<ReplayOptions>,
    seen: Mutex<Vec<Seen>>,
}

/// The replaying upstream.
#[derive(Debug)]
pub struct Replayer {
    pub addr: SocketAddr,
    state: Arc<ReplayState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replayer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Replayer {
    pub async fn start() -> Replayer {
        Self::with(exchanges()).await
    }

    pub async fn with(exchanges: Vec<Exchange>) -> Replayer {
        let state = Arc::new(ReplayState {
            exchanges,
            opts: Mutex::new(ReplayOptions::default()),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(replay)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Replayer { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, opts: ReplayOptions) {
        *self.state.opts.lock().expect("lock") = opts;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }
}

/// Qdrant's equivalent spellings made one: `{"nearest": v}` is the query `v` (the Python client
/// sends the long form, the recording has the short one).
fn canonical_request(v: &Value) -> Value {
    match v {
        Value::Object(m) if m.len() == 1 && m.contains_key("nearest") => {
            canonical_request(&m["nearest"])
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), canonical_request(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(canonical_request).collect()),
        x => x.clone(),
    }
}

/// How well a recorded request matches a sent one: `Some(score)` when every recorded field is
/// present with the same value (higher = more fields; exact equality wins).
fn matches(recorded: &Value, sent: &Value) -> Option<usize> {
    let (recorded, sent) = (&canonical_request(recorded), &canonical_request(sent));
    if recorded == sent {
        return Some(usize::MAX);
    }
    match (recorded, sent) {
        (Value::Object(r), Value::Object(s)) => {
            let mut score = 0;
            for (k, v) in r {
                match s.get(k) {
                    Some(x) if x == v => score += 1,
                    None if v.is_null() => {}
                    _ => return None,
                }
            }
            Some(score)
        }
        _ => None,
    }
}

fn find<'a>(
    exchanges: &'a [Exchange],
    method: &str,
    pq: &str,
    body: &Value,
) -> Option<&'a Exchange> {
    let path = pq.split('?').next().unwrap_or(pq);
    exchanges
        .iter()
        .filter(|e| e.method == method)
        .filter(|e| e.path == pq || e.path.split('?').next() == Some(path))
        .filter_map(|e| {
            matches(&e.request, body).map(|s| (s.saturating_add(usize::from(e.path == pq)), e))
        })
        .max_by_key(|(s, _)| *s)
        .map(|(_, e)| e)
}

/// A body sent in several frames with no length: hyper answers it chunked.
struct Chunks(VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("deflate");
    e.finish().expect("deflate")
}

async fn replay(State(st): State<Arc<ReplayState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => panic!("replayer cannot read the body: {e:?}"),
    };
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    st.seen.lock().expect("lock").push(Seen {
        method: parts.method.to_string(),
        path_and_query: pq.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let opts = st.opts.lock().expect("lock").clone();
    let (status, ctype, data) = match opts.canned {
        Some(c) => c,
        None => {
            let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match find(&st.exchanges, parts.method.as_str(), &pq, &sent) {
                Some(e) => (e.status, e.content_type.clone(), e.body()),
                None => (
                    599,
                    "application/json".to_owned(),
                    serde_json::json!({"replayer": format!("no exchange for {} {pq} {sent}", parts.method)})
                        .to_string()
                        .into_bytes(),
                ),
            }
        }
    };
    let (data, coding) = match opts.encoding {
        Encoding::Identity => (data, None),
        Encoding::Gzip => (gzip(&data), Some("gzip")),
        Encoding::Deflate => (deflate(&data), Some("deflate")),
    };
    let mut resp = if opts.chunked {
        let pieces: VecDeque<Bytes> = data.chunks(7).map(Bytes::copy_from_slice).collect();
        Response::new(Body::new(Chunks(pieces)))
    } else {
        Response::new(Body::from(data))
    };
    *resp.status_mut() = StatusCode::from_u16(status).expect("status");
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&ctype).expect("ctype"),
    );
    h.insert("x-upstream", HeaderValue::from_static("replayer"));
    if let Some(c) = coding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(c));
    }
    resp
}

/// A proxy running in-process.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
    }
}

/// The default firewall: the rules plus the default model (tests/common).
pub fn firewall() -> Arc<Firewall> {
    common::firewall()
}

/// A config for the proxy in front of `upstream`.
pub fn config(upstream: &str) -> Config {
    let mut cfg = common::config();
    cfg.proxy.upstream = upstream.to_owned();
    cfg.proxy.listen = "127.0.0.1:0".into();
    cfg
}

pub async fn start_proxy(cfg: &Config, fw: Arc<Firewall>) -> Running {
    let proxy = Arc::new(ragwall::proxy::Proxy::new(cfg, fw).expect("proxy starts"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = ragwall::proxy::serve(proxy, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// Sends `method path` exactly as written (no client-side normalization of `..` or
/// percent-encoding) and returns the status and body.
pub async fn raw_request(addr: SocketAddr, method: &str, path: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => buf[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

/// A test client that never decompresses, so tests see bytes as the proxy sent them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// Sends an exchange's request through the proxy at `base`.
pub async fn send(c: &reqwest::Client, base: &Running, e: &Exchange) -> reqwest::Response {
    let method: reqwest::Method = e.method.parse().expect("method");
    let mut req = c.request(method, base.url(&e.path));
    if !e.request.is_null() {
        req = req
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&e.request).expect("json"));
    } else if e.method == "POST" {
        req = req.header("content-type", "application/json");
    }
    req.send().await.expect("request reaches the proxy")
}

/// A detector with a fixed behaviour, for failure tests.
#[derive(Debug)]
pub enum FakeDetector {
    Score(f32),
    Overloaded,
    Failing,
    /// Panics if asked to score anything: proves stamps were trusted.
    MustNotRun,
    /// Scores 0.99 the texts containing the word, 0 the others.
    Keyword(&'static str),
    /// Takes this long per batch, then scores 0.
    Slow(std::time::Duration),
}

impl Detector for FakeDetector {
    fn id(&self) -> String {
        "fake:1".into()
    }
    fn detect(&self, texts: &[&str]) -> Result<Vec<Detection>, DetectError> {
        match self {
            FakeDetector::Score(s) => Ok(texts
                .iter()
                .map(|_| Detection {
                    score: *s,
                    findings: Vec::new(),
                })
                .collect()),
            FakeDetector::Overloaded => Err(DetectError::Overloaded("queue full".into())),
            FakeDetector::Failing => Err(DetectError::Failed("model crashed".into())),
            FakeDetector::MustNotRun => panic!("detector ran on {texts:?}"),
            FakeDetector::Slow(d) => {
                std::thread::sleep(*d);
                Ok(texts
                    .iter()
                    .map(|_| Detection {
                        score: 0.0,
                        findings: Vec::new(),
                    })
                    .collect())
            }
            FakeDetector::Keyword(w) => Ok(texts
                .iter()
                .map(|t| Detection {
                    score: if t.contains(w) { 0.99 } else { 0.0 },
                    findings: Vec::new(),
                })
                .collect()),
        }
    }
}

/// A firewall over a fake detector with the default policy.
pub fn fake_firewall(d: FakeDetector) -> Arc<Firewall> {
    Arc::new(Firewall::new(&Config::default(), Arc::new(d)).expect("policy"))
}

/// Point ids (as JSON) in a response, in document order.
pub fn point_ids(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m)
                if m.contains_key("id") && m.get("payload").is_some_and(Value::is_object) =>
            {
                out.push(m["id"].clone());
            }
            Value::Object(m) => m.values().for_each(|x| walk(x, out)),
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}
