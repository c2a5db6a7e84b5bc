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
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use serde_json::{Map, Value};
use tracing::{Instrument, instrument};

use crate::chunk::ChunkId;
use crate::http::listen::BodyError;
use crate::policy::Action;
use crate::proxy::Proxy;
use crate::proxy::bignum;
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
    pub route: &'static str,
    pub target: Option<Target>,
    pub points: usize,
    pub scanned: usize,
    pub stamped: usize,
    pub quarantined: usize,
    pub tagged: usize,
    /// Groups and facet values removed (their text was quarantined, or every hit was).
    pub groups_removed: usize,
    pub values_removed: usize,
    pub ingest_flagged: usize,
    /// Actions of the scanned upsert's points, counted in metrics once Qdrant accepted the write
    /// (so a client cannot grow the `collection` label with names Qdrant does not have).
    pub ingest_actions: Vec<Action>,
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
            groups_removed: 0,
            values_removed: 0,
            ingest_flagged: 0,
            ingest_actions: Vec::new(),
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
    /// Stream the response through unscanned (an allowed snapshot download).
    stream: bool,
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
    if target.snapshot_download && !p.cfg.allow_snapshots {
        return Err(ProxyError::SnapshotRefused);
    }
    let limit = p.upstream.max_body();
    let body = crate::http::listen::read_body(body, limit, &p.cfg.connections)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge(max) => ProxyError::RequestTooLarge(max),
            BodyError::Timeout(secs) => ProxyError::RequestTimeout(secs),
            BodyError::Read(e) => ProxyError::BadRequest(format!("cannot read request body: {e}")),
        })?;
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
        stream: target.snapshot_download,
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
    ctx.ingest_actions = plan.decisions.iter().map(|(a, _)| *a).collect();
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
            .send(Method::PUT, &qpath, headers, Bytes::from(q), false)
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
        .send(
            fwd.method,
            &fwd.path_and_query,
            fwd.headers,
            fwd.body,
            fwd.stream,
        )
        .await
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
    // Whether a body is scanned depends on the route and the body, never on its content type:
    // a collection route answers JSON (a BOM is tolerated, as clients tolerate it), and anything
    // else there cannot be passed on as scanned.
    let json = decoded.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&decoded);
    // Integers beyond 64 bits would come back as floats after a rewrite (see bignum.rs).
    let marker = format!("\u{E000}rw{}:", &crate::wrap::new_nonce()[..8]);
    let protected = bignum::protect(json, &marker);
    let mut doc: Value = match serde_json::from_slice(protected.as_deref().unwrap_or(json)) {
        Ok(v) => v,
        Err(e) if ctx.target.as_ref().is_none_or(Target::may_carry_points) => {
            return Err(ProxyError::Unscannable(format!("not JSON: {e}")));
        }
        // Not a collection route and not JSON (`/metrics`, `/healthz`…): no point payloads.
        Err(_) => return Ok(None),
    };
    let refs = shape::find_points(&doc);
    let loose = shape::find_loose(&doc);
    if refs.is_empty() && loose.is_empty() {
        return Ok(None);
    }
    // Group ids and facet values that read as text are scanned like payload text.
    let loose_texts: Vec<(usize, String)> = loose
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            l.text
                .as_ref()
                .filter(|t| crate::proxy::payload::key_reads_as_text(t))
                .map(|t| (i, t.clone()))
        })
        .collect();
    ctx.points = refs.len();
    let points: Vec<(ChunkId, Map<String, Value>)> = refs
        .iter()
        .filter_map(|r| shape::get(&doc, &r.steps))
        .map(|v| {
            let id = match v.get("id") {
                Some(Value::Number(n)) => ChunkId::Num(n.clone()),
                Some(Value::String(s)) => ChunkId::Str(s.clone()),
                Some(other) => ChunkId::Str(other.to_string()),
                None => ChunkId::Str("?".into()),
            };
            // A payload that is not an object is scanned as the one field `payload`.
            let payload = match v.get("payload") {
                Some(Value::Object(m)) => m.clone(),
                Some(other) => Map::from_iter([("payload".to_owned(), other.clone())]),
                None => Map::new(),
            };
            (id, payload)
        })
        .collect();
    let scanner = p.scanner.clone();
    let collection = ctx.collection().map(str::to_owned);
    let started = Instant::now();
    let n_loose = loose.len();
    let deadline_ms = p.cfg.scan_deadline_ms;
    let deadline = (started + Duration::from_millis(deadline_ms), deadline_ms);
    let task = tokio::task::spawn_blocking(move || {
        let refs: Vec<(ChunkId, &Map<String, Value>)> =
            points.iter().map(|(id, m)| (id.clone(), m)).collect();
        let decisions = scanner.decide_by(collection.as_deref(), &refs, true, Some(deadline))?;
        let mut actions = vec![Action::Allow; n_loose];
        let judged = scanner.judge_texts(collection.as_deref(), &loose_texts)?;
        for ((i, _), a) in loose_texts.iter().zip(judged) {
            actions[*i] = a;
        }
        Ok::<_, crate::firewall::FirewallError>((decisions, actions))
    });
    // The answer does not wait past the deadline; the task itself stops at its next batch.
    let (decisions, loose_actions) =
        match tokio::time::timeout(Duration::from_millis(deadline_ms), task).await {
            Err(_) => return Err(ProxyError::ScanTimeout(deadline_ms)),
            Ok(joined) => joined.map_err(|e| ProxyError::Internal(format!("scan task: {e}")))??,
        };
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
    // The refusal names what was blocked without quoting it: an id or a group id is payload
    // data and may be the attack itself (it reaches the client and the log only in the restricted
    // form envelope attributes use).
    if let Some(d) = decisions.iter().find(|d| d.action == Action::Block) {
        return Err(ProxyError::Blocked {
            id: crate::wrap::attribute_value(&d.id.to_string()),
            reasons: d.reasons.join(", "),
        });
    }
    if let Some(i) = loose_actions.iter().position(|a| *a == Action::Block) {
        let what = match loose[i].kind {
            shape::LooseKind::Group => "group id",
            shape::LooseKind::FacetValue => "facet value",
        };
        return Err(ProxyError::Blocked {
            id: format!(
                "{what} {}",
                crate::wrap::attribute_value(loose[i].text.as_deref().unwrap_or(""))
            ),
            reasons: "score".into(),
        });
    }
    let mut headers = headers.clone();
    let wrap = p.wrap_with();
    if !rewrite::needs_rewrite(&decisions, wrap.is_some())
        && !loose_actions.iter().any(|a| *a >= Action::Quarantine)
    {
        mark(&mut headers, ctx, None);
        return Ok(Some(pass(status, headers, raw.clone())));
    }
    let rw = rewrite::Rewrite {
        detector: p.scanner.firewall().detector_id(),
        policy_version: &p.scanner.firewall().policy().version,
        collection: ctx.collection(),
        wrap: wrap.clone(),
    };
    let mut out = rewrite::apply(&mut doc, &refs, &decisions, &rw);
    rewrite::prune_loose(&mut doc, &loose, &loose_actions, &mut out);
    ctx.quarantined = out.quarantined;
    ctx.tagged = out.tagged;
    ctx.groups_removed = out.groups_removed;
    ctx.values_removed = out.values_removed;
    mark(&mut headers, ctx, wrap.as_ref().map(|w| w.nonce.as_str()));
    headers.remove(header::CONTENT_ENCODING);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if out.result_removed {
        let id = decisions
            .first()
            .map(|d| crate::wrap::attribute_value(&d.id.to_string()))
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
    let mut body = serde_json::to_vec(&doc).map_err(|e| ProxyError::Internal(e.to_string()))?;
    if protected.is_some() {
        body = bignum::restore(&body, &marker).into_owned();
    }
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
    set("x-ragwall-groups-removed", ctx.groups_removed.to_string());
    set("x-ragwall-values-removed", ctx.values_removed.to_string());
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
        ctx.route,
        crate::http::method_label(&ctx.method),
        resp.status().as_u16(),
        elapsed,
    );
    if let Some(kind) = ctx.error {
        p.metrics.error(kind);
    }
    if resp.status().is_success() {
        let coll = ctx.collection().unwrap_or("");
        for a in &ctx.ingest_actions {
            p.metrics.ingest(coll, *a);
        }
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
