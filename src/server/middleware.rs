//! The layers every request goes through, outermost first:
//!
//! 1. [`request_id`]: takes the client's `x-request-id` if it is short and plain
//!    (`[A-Za-z0-9._:-]{1,128}`), else makes a UUID; opens the request's tracing span; echoes the
//!    id on the response; and renders every [`ApiError`] body with it ([`errors::render`]).
//! 2. [`track`]: Prometheus counters and latency by matched route, in-flight gauge.
//! 3. (`/v1/*` only) API keys ([`crate::http::auth::AuthLayer`]), so unauthenticated clients
//!    consume nothing below.
//! 4. (`/v1/scan`, `/v1/guard`) [`ready`]: 503 until the model is warmed up.
//! 5. [`read_body`]: the whole body, within `[server.connections] body_timeout_secs` (408)
//!    and `max_body_bytes` (413), before any permit is taken.
//! 6. [`concurrency`]: a permit from a semaphore of `max_concurrent_requests`, or 429 at once.
//!    The permit is handed to the handler, which moves it into the blocking inspection, so it is
//!    held until the CPU work ends even when the client has gone or the deadline has passed: the
//!    limit bounds work, not just connections.
//! 7. [`deadline`]: 504 when parsing and inspecting take longer than `deadline_ms`.
//!
//! Around all of them, [`crate::http::listen::close_after_refusal`] adds `Connection: close` to
//! refusals that leave a body unread (401, 408, 413, 415, 429, 431).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::App;
use super::errors::{self, ApiError, ErrorReport};
use super::extract::BodyLimit;
use crate::http::REQUEST_ID_HEADER;

/// The request's id, in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// A concurrency permit, in request extensions; see the module docs.
#[derive(Debug, Clone)]
pub struct Permit(pub Arc<OwnedSemaphorePermit>);

fn plain_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| s.to_owned())
}

pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(plain_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or(HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID_HEADER, value.clone());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let res = next.run(req).instrument(span.clone()).await;
    let mut res = span.in_scope(|| errors::render(res, &id));
    res.headers_mut().insert(REQUEST_ID_HEADER, value);
    res
}

/// Decrements the in-flight gauge even when the request future is dropped.
struct InFlight(prometheus::IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

pub async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = crate::http::method_label(req.method());
    let m = app.metrics();
    m.http_in_flight.inc();
    let _guard = InFlight(m.http_in_flight.clone());
    let started = Instant::now();
    let res = next.run(req).await;
    let elapsed = started.elapsed();
    let status = res.status();
    m.http_requests
        .with_label_values(&[route.as_str(), method, status.as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route.as_str()])
        .observe(elapsed.as_secs_f64());
    let kind = match res.extensions().get::<ErrorReport>() {
        Some(r) => Some(r.kind),
        None if status == http::StatusCode::UNAUTHORIZED => Some("unauthorized"),
        None => None,
    };
    if let Some(kind) = kind {
        m.http_errors.with_label_values(&[kind]).inc();
    }
    tracing::debug!(
        route,
        status = status.as_u16(),
        micros = elapsed.as_micros() as u64,
        "served"
    );
    res
}

pub async fn ready(State(app): State<App>, req: Request, next: Next) -> Response {
    if !app.is_ready() {
        return ApiError::NotReady {
            retry_after: app.config().retry_after_secs,
        }
        .into_response();
    }
    next.run(req).await
}

/// Reads the whole body (at most `max_body_bytes`, within `[server.connections]
/// body_timeout_secs`) before the request takes a concurrency permit: a slow client holds its
/// connection, never a permit.
pub async fn read_body(State(app): State<App>, req: Request, next: Next) -> Response {
    use crate::http::listen::{self, BodyError};
    let (parts, body) = req.into_parts();
    let cfg = app.config();
    match listen::read_body(body, cfg.max_body_bytes, &cfg.connections).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(BodyError::Timeout(secs)) => ApiError::BodyTimeout(secs).into_response(),
        Err(BodyError::TooLarge(max)) => ApiError::BodyTooLarge { max }.into_response(),
        Err(BodyError::Read(e)) => ApiError::BodyRead(e).into_response(),
    }
}

pub async fn concurrency(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let Ok(permit) = app.limiter().try_acquire_owned() else {
        return ApiError::Busy {
            retry_after: app.config().retry_after_secs,
        }
        .into_response();
    };
    req.extensions_mut().insert(Permit(Arc::new(permit)));
    req.extensions_mut()
        .insert(BodyLimit(app.config().max_body_bytes));
    next.run(req).await
}

pub async fn deadline(State(app): State<App>, req: Request, next: Next) -> Response {
    let cfg = app.config();
    match tokio::time::timeout(cfg.deadline(), next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::Deadline(cfg.deadline_ms).into_response(),
    }
}
