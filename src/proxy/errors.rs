//! Every way a proxied request can fail, where the failure came from, and the one place that maps
//! it to an HTTP status and a body in Qdrant's own error shape
//! (`{"status":{"error":"…"},"time":…}`), so Qdrant clients raise their usual exception.
//!
//! Clients get a short message; the detail goes to the log. The origin decides whether
//! `fail_open` may apply: only a failure to *scan* a response that did arrive can be passed
//! through, never a missing upstream or a policy decision.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::detect::DetectError;
use crate::firewall::FirewallError;

/// Where an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client's request.
    Downstream,
    /// Qdrant or the network to it.
    Upstream,
    /// ragwall itself (detector, internal bug).
    Internal,
    /// A policy decision, not a failure.
    Policy,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("missing or invalid ragwall API key (x-ragwall-api-key)")]
    Unauthorized,
    #[error("request body larger than {0} bytes")]
    RequestTooLarge(usize),
    #[error("the request body did not arrive within {0} s")]
    RequestTimeout(u64),
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("upstream response larger than {0} bytes cannot be scanned")]
    ResponseTooLarge(usize),
    #[error("upstream body cannot be read: {0}")]
    UpstreamBody(String),
    /// The body arrived but cannot be scanned (unknown encoding, invalid JSON…).
    #[error("upstream body cannot be scanned: {0}")]
    Unscannable(String),
    #[error("classifier overloaded: {0}")]
    Overloaded(String),
    #[error("scan failed: {0}")]
    Scan(String),
    #[error("the scan took longer than proxy.scan_deadline_ms = {0}; response withheld")]
    ScanTimeout(u64),
    #[error("response blocked by ragwall policy: point {id} ({reasons})")]
    Blocked { id: String, reasons: String },
    #[error(
        "snapshot downloads are refused through ragwall (they carry every payload unscanned); \
         download snapshots from Qdrant directly, or set proxy.allow_snapshots = true"
    )]
    SnapshotRefused,
    #[error("upsert rejected by ragwall policy: point {id} ({reasons})")]
    IngestRejected { id: String, reasons: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<FirewallError> for ProxyError {
    fn from(e: FirewallError) -> Self {
        match e {
            FirewallError::Detector(DetectError::Overloaded(m)) => ProxyError::Overloaded(m),
            FirewallError::Deadline(ms) => ProxyError::ScanTimeout(ms),
            e => ProxyError::Scan(e.to_string()),
        }
    }
}

impl ProxyError {
    pub fn origin(&self) -> Origin {
        use ProxyError::*;
        match self {
            BadRequest(_) | Unauthorized | RequestTooLarge(_) | RequestTimeout(_) => {
                Origin::Downstream
            }
            UpstreamUnreachable(_)
            | UpstreamTimeout(_)
            | ResponseTooLarge(_)
            | UpstreamBody(_)
            | Unscannable(_) => Origin::Upstream,
            Overloaded(_) | Scan(_) | ScanTimeout(_) | Internal(_) => Origin::Internal,
            Blocked { .. } | IngestRejected { .. } | SnapshotRefused => Origin::Policy,
        }
    }

    /// Whether `fail_open` may pass the upstream response through instead.
    pub fn may_fail_open(&self) -> bool {
        matches!(
            self,
            ProxyError::Unscannable(_)
                | ProxyError::Overloaded(_)
                | ProxyError::Scan(_)
                | ProxyError::ScanTimeout(_)
        )
    }

    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            BadRequest(_) => StatusCode::BAD_REQUEST,
            Unauthorized => StatusCode::UNAUTHORIZED,
            RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            UpstreamUnreachable(_) | ResponseTooLarge(_) | UpstreamBody(_) | Unscannable(_) => {
                StatusCode::BAD_GATEWAY
            }
            UpstreamTimeout(_) | ScanTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Overloaded(_) | Scan(_) => StatusCode::SERVICE_UNAVAILABLE,
            Blocked { .. } | IngestRejected { .. } | SnapshotRefused => StatusCode::FORBIDDEN,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable label for metrics (`kind`).
    pub fn kind(&self) -> &'static str {
        use ProxyError::*;
        match self {
            BadRequest(_) => "bad_request",
            Unauthorized => "unauthorized",
            RequestTooLarge(_) => "request_too_large",
            RequestTimeout(_) => "request_timeout",
            UpstreamUnreachable(_) => "upstream_unreachable",
            UpstreamTimeout(_) => "upstream_timeout",
            ResponseTooLarge(_) => "response_too_large",
            UpstreamBody(_) => "upstream_body",
            Unscannable(_) => "unscannable",
            Overloaded(_) => "overloaded",
            Scan(_) => "scan_failed",
            ScanTimeout(_) => "scan_timeout",
            Blocked { .. } => "blocked",
            IngestRejected { .. } => "ingest_rejected",
            SnapshotRefused => "snapshot_refused",
            Internal(_) => "internal",
        }
    }

    /// The message clients see: no internal detail for internal failures.
    fn public_message(&self) -> String {
        match self {
            ProxyError::Scan(_) => "ragwall: scan failed; response withheld".into(),
            ProxyError::Internal(_) => "ragwall: internal error".into(),
            e => format!("ragwall: {e}"),
        }
    }

    /// The response in Qdrant's error shape; `elapsed` becomes `time`.
    pub fn to_response(&self, elapsed: Duration) -> Response {
        let body = qdrant_error_body(&self.public_message(), elapsed);
        let mut resp = (self.status(), body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert("x-ragwall-error", HeaderValue::from_static(self.kind()));
        if matches!(self, ProxyError::Overloaded(_)) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

/// `{"status":{"error":msg},"time":secs}`.
pub fn qdrant_error_body(msg: &str, elapsed: Duration) -> String {
    serde_json::json!({"status": {"error": msg}, "time": elapsed.as_secs_f64()}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_origins() {
        let e: ProxyError =
            FirewallError::Detector(DetectError::Overloaded("queue full".into())).into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.may_fail_open());
        let r = e.to_response(Duration::from_millis(3));
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let e = ProxyError::UpstreamUnreachable("refused".into());
        assert_eq!(
            (e.status(), e.origin()),
            (StatusCode::BAD_GATEWAY, Origin::Upstream)
        );
        assert!(!e.may_fail_open());
        let e = ProxyError::Blocked {
            id: "3".into(),
            reasons: "score".into(),
        };
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert!(!e.may_fail_open(), "a policy decision is never failed open");
        let body: serde_json::Value =
            serde_json::from_str(&qdrant_error_body("x", Duration::ZERO)).expect("json");
        assert_eq!(body["status"]["error"], "x");
        assert!(body["time"].is_number());
    }
}
