//! The four phases of one proxied request, on one per-request [`Ctx`] (pingora's proxy trait):
//!
//! 1. **request filter**: API key, canonical path (`route.rs`), buffered body, ingestion scan;
//! 2. **upstream**: forward to Qdrant (`upstream.rs`);
//! 3. **response filter**: decode, find points by shape, decide, rewrite or pass through;
//! 4. **logging**: one log line and the metrics.
//!
//! Pass-through is byte-exact: a response is re-serialized only when a decision changes it
//! (quarantine, tag, wrap). A response without point payloads keeps its status, headers and body
//! bytes (its encoding included). A failure to scan answers 502/503 in Qdrant's error shape
//! unless `fail_open` is set, and then the response passes with `x-ragwall-fail-open`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value};
use tracing::{Instrument, instrument};

use crate::chunk::ChunkId;
use crate::policy::Action;
use crate::proxy::Proxy;
use crate::proxy::config::IngestPolicy;
use crate::proxy::errors::{ProxyError, qdrant_error_body};
use crate::proxy::route::{self, Target};
use crate::proxy::upstream::{self, UpstreamResponse};
use crate::proxy::{ingest, metrics, rewrite, shape};

/// Everything known about one request as it moves through the phases.
#[derive(Debug)]
pub struct Ctx {
    pub request_id: String,
    pub start: Instant,
    pub method: Method,
    pub route: String,
    pub target: Option<Target>,
    pub points: usize,
    pub scanned: usize,
    pub stamped: usize,
    pub quarantined: usize,
    pub tagged: usize,
    pub ingest_flagged: usize,
    pub fail_open: Option<&'static str>,
    pub error: Option<&'static str>,
}

impl Ctx {
    fn new(req: &Request) -> Self {
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_else(|| crate::wrap::new_nonce()[..16].to_owned());
        Ctx {
            request_id,
            start: Instant::now(),
            method: req.method().clone(),
            route: metrics::route_label(req.uri().path()),
            target: None,
            points: 0,
            scanned: 0,
            stamped: 0,
            quarantined: 0,
            tagged: 0,
            ingest_flagged: 0,
            fail_open: None,
            error: None,
        }
    }

    fn collection(&self) -> Option<&str> {
        self.target.as_ref().and_then(|t| t.collection.as_deref())
    }
}

/// What the request filter hands to the upstream phase.
#[derive(Debug)]
struct Forward {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// The fallback handler: every request that is not one of the proxy's own routes.
pub async fn handle(State(p): State<Arc<Proxy>>, req: Request) -> Response {
    let mut ctx = Ctx::new(&req);
    let span = tracing::info_span!("proxy", request_id = %ctx.request_id, method = %ctx.method, route = %ctx.route);
    async {
        let result = async {
            let fwd = request_filter(&p, &mut ctx, req).await?;
            let resp = upstream_phase(&p, fwd).await?;
            response_filter(&p, &mut ctx, resp).await
        }
        .await;
        let resp = result.unwrap_or_else(|e| {
            tracing::warn!(error = %e, kind = e.kind(), "request failed");
            ctx.error = Some(e.kind());
            e.to_response(ctx.start.elapsed())
        });
        logging(&p, &ctx, &resp);
        resp
    }
    .instrument(span)
    .await
}

#[instrument(skip_all)]
async fn request_filter(p: &Proxy, ctx: &mut Ctx, req: Request) -> Result<Forward, ProxyError> {
    p.authorize(req.headers())?;
    let (parts, body) = req.into_parts();
    let target = route::canonicalize(&parts.method, parts.uri.path(), parts.uri.query())
        .map_err(ProxyError::BadRequest)?;
    ctx.route = metrics::route_label(&target.path);
    let limit = p.upstream.max_body();
    let body = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ProxyError::RequestTooLarge(limit)
            } else {
                ProxyError::BadRequest(format!("cannot read request body: {e}"))
            }
        })?
        .to_bytes();
    let mut headers = parts.headers;
    if !headers.contains_key("x-request-id")
        && let Ok(v) = HeaderValue::from_str(&ctx.request_id)
    {
        headers.insert("x-request-id", v);
    }
    let mut fwd = Forward {
        method: parts.method,
        path_and_query: target.path_and_query(),
        headers,
        body,
    };
    if let Some(write) = target.write
        && p.cfg.ingest.policy != IngestPolicy::Off
    {
        ingest_phase(p, ctx, &target, write, &mut fwd).await?;
    }
    ctx.target = Some(target);
    Ok(fwd)
}

/// Scans a write and forwards it as the ingestion policy says.
async fn ingest_phase(
    p: &Proxy,
    ctx: &mut Ctx,
    target: &Target,
    write: route::Write,
    fwd: &mut Forward,
) -> Result<(), ProxyError> {
    // A compressed request body is decoded like a response: it is scanned as Qdrant will read it.
    let decoded = upstream::decode(&fwd.headers, &fwd.body, p.upstream.max_body())
        .map_err(|e| ProxyError::BadRequest(e.to_string()))?;
    let Ok(doc) = serde_json::from_slice::<Value>(&decoded) else {
        // Qdrant refuses what is not JSON; nothing is written.
        return Ok(());
    };
    let scanner = p.scanner.clone();
    let policy = p.cfg.ingest.policy;
    let collection = target.collection.clone();
    let plan = tokio::task::spawn_blocking(move || {
        ingest::plan(&scanner, policy, collection.as_deref(), write, doc)
    })
    .await
    .map_err(|e| ProxyError::Internal(format!("scan task: {e}")))??;
    let coll = target.collection.as_deref().unwrap_or("");
    for (a, _) in &plan.decisions {
        p.metrics.ingest(coll, *a);
    }
    ctx.ingest_flagged = plan.flagged;
    if let Some(q) = plan.quarantine {
        let qpath = format!(
            "/collections/{}{}/points?wait=true",
            percent_encoding::utf8_percent_encode(coll, percent_encoding::NON_ALPHANUMERIC),
            p.cfg.ingest.quarantine_suffix
        );
        let mut headers = fwd.headers.clone();
        headers.remove(header::CONTENT_ENCODING);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let resp = p
            .upstream
            .send(Method::PUT, &qpath, headers, Bytes::from(q))
            .await?;
        if !resp.status.is_success() {
            return Err(ProxyError::UpstreamBody(format!(
                "quarantine collection write answered {}",
                resp.status
            )));
        }
    }
    if let Some(body) = plan.body {
        fwd.headers.remove(header::CONTENT_ENCODING);
        fwd.body = Bytes::from(body);
    }
    Ok(())
}

#[instrument(skip_all)]
async fn upstream_phase(p: &Proxy, fwd: Forward) -> Result<UpstreamResponse, ProxyError> {
    p.upstream
        .send(fwd.method, &fwd.path_and_query, fwd.headers, fwd.body)
        .await
}

fn is_json_type(headers: &HeaderMap) -> bool {
    upstream::media_type(headers).is_none_or(|t| t == "application/json" || t.ends_with("+json"))
}

/// The upstream response as it came. `content-length` is set from the body, except for an empty
/// body (HEAD, 204, 304), whose upstream headers are kept as they are.
fn pass(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> Response {
    if !body.is_empty() || !headers.contains_key(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

#[instrument(skip_all)]
async fn response_filter(
    p: &Proxy,
    ctx: &mut Ctx,
    resp: UpstreamResponse,
) -> Result<Response, ProxyError> {
    let UpstreamResponse {
        status,
        headers,
        body,
    } = resp;
    let raw = match body {
        upstream::Body::Streamed(incoming) => {
            let mut resp = Response::new(Body::new(incoming));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            return Ok(resp);
        }
        upstream::Body::Buffered(b) => b,
    };
    match inspect(p, ctx, status, &headers, &raw).await {
        Ok(Some(resp)) => Ok(resp),
        Ok(None) => Ok(pass(status, headers, raw)),
        Err(e) if p.cfg.fail_open && e.may_fail_open() => {
            tracing::warn!(error = %e, "scan failed; passing the response unscanned (fail_open)");
            ctx.fail_open = Some(e.kind());
            p.metrics.fail_open(e.kind());
            let mut headers = headers;
            headers.insert("x-ragwall-fail-open", HeaderValue::from_static(e.kind()));
            Ok(pass(status, headers, raw))
        }
        Err(e) => Err(e),
    }
}

/// Scans a buffered response. `Ok(None)` means "pass it on as it came".
async fn inspect(
    p: &Proxy,
    ctx: &mut Ctx,
    status: StatusCode,
    headers: &HeaderMap,
    raw: &Bytes,
) -> Result<Option<Response>, ProxyError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let decoded = upstream::decode(headers, raw, p.upstream.max_body())?;
    let mut doc: Value = match serde_json::from_slice(&decoded) {
        Ok(v) => v,
        Err(e) if is_json_type(headers) => {
            return Err(ProxyError::Unscannable(format!("invalid JSON: {e}")));
        }
        // Not JSON and not said to be: it carries no point payloads.
        Err(_) => return Ok(None),
    };
    let refs = shape::find_points(&doc);
    if refs.is_empty() {
        return Ok(None);
    }
    ctx.points = refs.len();
    let points: Vec<(ChunkId, Map<String, Value>)> = refs
        .iter()
        .filter_map(|r| shape::get(&doc, &r.steps))
        .map(|v| {
            let id = match v.get("id") {
                Some(Value::Number(n)) => ChunkId::Num(n.clone()),
                Some(Value::String(s)) => ChunkId::Str(s.clone()),
                _ => ChunkId::Str("?".into()),
            };
            let payload = match v.get("payload") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            (id, payload)
        })
        .collect();
    let scanner = p.scanner.clone();
    let collection = ctx.collection().map(str::to_owned);
    let started = Instant::now();
    let decisions = tokio::task::spawn_blocking(move || {
        let refs: Vec<(ChunkId, &Map<String, Value>)> =
            points.iter().map(|(id, m)| (id.clone(), m)).collect();
        scanner.decide(collection.as_deref(), &refs, true)
    })
    .await
    .map_err(|e| ProxyError::Internal(format!("scan task: {e}")))??;
    p.metrics.scan(started.elapsed());
    let coll = ctx.collection().unwrap_or("").to_owned();
    for d in &decisions {
        p.metrics.point(&coll, d.action, d.stamped);
        if let Some(m) = d.stamp_mismatch {
            p.metrics.stamp_mismatch(&coll, m.label());
        }
        if d.stamped {
            ctx.stamped += 1;
        } else {
            ctx.scanned += 1;
        }
    }
    if let Some(d) = decisions.iter().find(|d| d.action == Action::Block) {
        return Err(ProxyError::Blocked {
            id: d.id.to_string(),
            reasons: d.reasons.join(", "),
        });
    }
    let mut headers = headers.clone();
    let wrap = p.wrap_with();
    if !rewrite::needs_rewrite(&decisions, wrap.is_some()) {
        mark(&mut headers, ctx, None);
        return Ok(Some(pass(status, headers, raw.clone())));
    }
    let rw = rewrite::Rewrite {
        detector: p.scanner.firewall().detector_id(),
        policy_version: &p.scanner.firewall().policy().version,
        collection: ctx.collection(),
        wrap: wrap.clone(),
    };
    let out = rewrite::apply(&mut doc, &refs, &decisions, &rw);
    ctx.quarantined = out.quarantined;
    ctx.tagged = out.tagged;
    mark(&mut headers, ctx, wrap.as_ref().map(|w| w.nonce.as_str()));
    headers.remove(header::CONTENT_ENCODING);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if out.result_removed {
        let id = decisions
            .first()
            .map(|d| d.id.to_string())
            .unwrap_or_default();
        let body = qdrant_error_body(
            &format!("Not found: Point with id {id} is quarantined by ragwall"),
            ctx.start.elapsed(),
        );
        return Ok(Some(pass(
            StatusCode::NOT_FOUND,
            headers,
            Bytes::from(body),
        )));
    }
    let body = serde_json::to_vec(&doc).map_err(|e| ProxyError::Internal(e.to_string()))?;
    Ok(Some(pass(status, headers, Bytes::from(body))))
}

/// The `x-ragwall-*` headers of a scanned response.
fn mark(headers: &mut HeaderMap, ctx: &Ctx, nonce: Option<&str>) {
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    };
    set("x-ragwall-quarantined", ctx.quarantined.to_string());
    set("x-ragwall-tagged", ctx.tagged.to_string());
    set("x-ragwall-scanned", ctx.scanned.to_string());
    set("x-ragwall-stamped", ctx.stamped.to_string());
    set("x-request-id", ctx.request_id.clone());
    if let Some(n) = nonce {
        set("x-ragwall-wrap-nonce", n.to_owned());
    }
}

fn logging(p: &Proxy, ctx: &Ctx, resp: &Response) {
    let elapsed = ctx.start.elapsed();
    p.metrics.request(
        &ctx.route,
        ctx.method.as_str(),
        resp.status().as_u16(),
        elapsed,
    );
    if let Some(kind) = ctx.error {
        p.metrics.error(kind);
    }
    tracing::info!(
        status = resp.status().as_u16(),
        collection = ctx.collection().unwrap_or(""),
        points = ctx.points,
        scanned = ctx.scanned,
        stamped = ctx.stamped,
        quarantined = ctx.quarantined,
        tagged = ctx.tagged,
        ingest_flagged = ctx.ingest_flagged,
        fail_open = ctx.fail_open.unwrap_or(""),
        elapsed_ms = elapsed.as_secs_f64() * 1e3,
        "proxied"
    );
}
