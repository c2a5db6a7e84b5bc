//! The one place where errors become HTTP statuses.
//!
//! Every failure of a request is an [`ApiError`]; [`ApiError::status`] is the whole mapping, and
//! every answer has the JSON body `{"error": {"kind", "message", "request_id"}}` (plus `blocked`
//! for 403). Clients get a clear message; the log line (written by [`render`], with the request id)
//! gets the detail, which for server-side failures is never sent to the client.
//!
//! | status | kind | when |
//! |---|---|---|
//! | 400 | `malformed_json` | the body is not JSON |
//! | 400 | `body_read_failed` | the body could not be read (client went away) |
//! | 401 | `unauthorized` | missing or wrong API key ([`crate::http::auth`]) |
//! | 403 | `blocked` | `/v1/guard`: a chunk's action is `block`; the whole request is refused |
//! | 404 | `not_found` | no such route |
//! | 405 | `method_not_allowed` | wrong method for a route |
//! | 413 | `body_too_large` | body over `[server] max_body_bytes` |
//! | 415 | `invalid_utf8` | the body is not UTF-8 |
//! | 415 | `unsupported_media_type` | `Content-Type` is not JSON |
//! | 422 | `invalid_request` | JSON of the wrong shape: wrong types, missing or unknown fields |
//! | 429 | `busy` | `[server] max_concurrent_requests` in flight (`Retry-After`) |
//! | 431 | `too_many_chunks` | more chunks than `[limits] max_chunks_per_call` |
//! | 500 | `detector_failed` | the classifier failed; nothing was scanned |
//! | 500 | `audit_failed` | a decision could not be written to the audit log |
//! | 500 | `internal` | a bug (a panicked worker) |
//! | 503 | `overloaded` | the classifier queue is full (`Retry-After`) |
//! | 503 | `not_ready` | the model is still warming up (`Retry-After`) |
//! | 504 | `deadline_exceeded` | the request took longer than `[server] deadline_ms` |
//!
//! Why 431 for too many chunks: the issue asks for a distinct status per failure, and HTTP has
//! one "content too large" code, which the body cap uses (proxies in front send it too). 431 keeps
//! the "request too large, do not retry as is" meaning; `kind` says exactly which limit.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

use crate::detect::DetectError;
use crate::firewall::FirewallError;
use crate::http::ErrorBody;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("request does not match the schema: {0}")]
    InvalidRequest(String),
    #[error("request body is not valid UTF-8: {0}")]
    InvalidUtf8(String),
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    #[error("{got} chunks in one request, more than the limit of {max}")]
    TooManyChunks { got: usize, max: usize },
    #[error("too many requests in flight; retry later")]
    Busy { retry_after: u64 },
    #[error("the model is warming up; retry later")]
    NotReady { retry_after: u64 },
    #[error("the classifier is overloaded; retry later")]
    Overloaded { retry_after: u64, detail: String },
    #[error("the detector failed; nothing was scanned")]
    DetectorFailed(String),
    #[error("the request took longer than its deadline of {0} ms; nothing was scanned")]
    Deadline(u64),
    #[error("the decision could not be written to the audit log")]
    Audit(String),
    #[error("internal error")]
    Internal(String),
    #[error("{} chunk(s) blocked by policy; the whole request is refused", .0.len())]
    Blocked(Vec<Value>),
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ApiError::Blocked(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::InvalidUtf8(_) | ApiError::UnsupportedMediaType => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::InvalidRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::TooManyChunks { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::DetectorFailed(_) | ApiError::Audit(_) | ApiError::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Overloaded { .. } | ApiError::NotReady { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Stable machine-readable kind (also the `kind` label of `ragwall_http_errors_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidUtf8(_) => "invalid_utf8",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BodyTooLarge { .. } => "body_too_large",
            ApiError::BodyRead(_) => "body_read_failed",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::TooManyChunks { .. } => "too_many_chunks",
            ApiError::Busy { .. } => "busy",
            ApiError::NotReady { .. } => "not_ready",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::DetectorFailed(_) => "detector_failed",
            ApiError::Deadline(_) => "deadline_exceeded",
            ApiError::Audit(_) => "audit_failed",
            ApiError::Internal(_) => "internal",
            ApiError::Blocked(_) => "blocked",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
    }

    /// Detail for the log only (server-side causes are not sent to clients).
    fn detail(&self) -> Option<&str> {
        match self {
            ApiError::Overloaded { detail, .. }
            | ApiError::DetectorFailed(detail)
            | ApiError::Audit(detail)
            | ApiError::Internal(detail) => Some(detail),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Busy { retry_after }
            | ApiError::NotReady { retry_after }
            | ApiError::Overloaded { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Maps a failed inspection; `retry_after` is for overload.
    pub fn from_firewall(e: FirewallError, retry_after: u64) -> Self {
        match e {
            FirewallError::TooManyChunks { got, max } => ApiError::TooManyChunks { got, max },
            FirewallError::Detector(DetectError::Overloaded(detail)) => ApiError::Overloaded {
                retry_after,
                detail,
            },
            FirewallError::Detector(DetectError::Failed(detail)) => {
                ApiError::DetectorFailed(detail)
            }
            FirewallError::Deadline(ms) => ApiError::Deadline(ms),
        }
    }
}

/// What the response carries until [`render`] writes the body with the request id.
#[derive(Debug, Clone)]
pub struct ErrorReport {
    pub kind: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub blocked: Option<Vec<Value>>,
}

/// `ErrorBody` plus the blocked chunks of a 403.
#[derive(Debug, Serialize)]
struct Body<'a> {
    #[serde(flatten)]
    error: ErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked: Option<&'a Vec<Value>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let report = ErrorReport {
            kind: self.kind(),
            message: self.to_string(),
            detail: self.detail().map(str::to_owned),
            blocked: match self {
                ApiError::Blocked(ref b) => Some(b.clone()),
                _ => None,
            },
        };
        let mut res = (status, body(&report, None)).into_response();
        if let Some(secs) = self.retry_after() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res.extensions_mut().insert(report);
        res
    }
}

fn body(report: &ErrorReport, request_id: Option<String>) -> Json<Value> {
    let b = Body {
        error: ErrorBody::new(report.kind, report.message.clone(), request_id),
        blocked: report.blocked.as_ref(),
    };
    Json(serde_json::to_value(b).unwrap_or(Value::Null))
}

/// Rewrites an error response's body with the request id and logs it, with the detail, once.
pub fn render(res: Response, request_id: &str) -> Response {
    let Some(report) = res.extensions().get::<ErrorReport>().cloned() else {
        return res;
    };
    let status = res.status();
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            kind = report.kind,
            detail = report.detail.as_deref().unwrap_or(""),
            "{}",
            report.message
        );
    } else {
        tracing::info!(
            status = status.as_u16(),
            kind = report.kind,
            "{}",
            report.message
        );
    }
    let (mut parts, _) = res.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let fresh = body(&report, Some(request_id.to_owned())).into_response();
    let (fresh_parts, fresh_body) = fresh.into_parts();
    if let Some(ct) = fresh_parts.headers.get(header::CONTENT_TYPE) {
        parts.headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    Response::from_parts(parts, fresh_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_failures_have_distinct_statuses() {
        let errors = [
            ApiError::MalformedJson(String::new()),
            ApiError::InvalidRequest(String::new()),
            ApiError::InvalidUtf8(String::new()),
            ApiError::BodyTooLarge { max: 1 },
            ApiError::TooManyChunks { got: 2, max: 1 },
            ApiError::Overloaded {
                retry_after: 1,
                detail: String::new(),
            },
            ApiError::DetectorFailed(String::new()),
            ApiError::Busy { retry_after: 1 },
            ApiError::Deadline(1),
            ApiError::Blocked(Vec::new()),
        ];
        let mut statuses: Vec<u16> = errors.iter().map(|e| e.status().as_u16()).collect();
        statuses.push(StatusCode::UNAUTHORIZED.as_u16());
        let n = statuses.len();
        statuses.sort_unstable();
        statuses.dedup();
        assert_eq!(statuses.len(), n, "{statuses:?}");
    }

    #[test]
    fn server_side_detail_is_not_in_the_message() {
        let e = ApiError::DetectorFailed("ort: secret path /opt/x".into());
        assert!(!e.to_string().contains("/opt/x"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
