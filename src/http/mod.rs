//! HTTP pieces shared by every ragwall service (`ragwall serve`, the Qdrant proxy).
//!
//! Contract:
//! - [`auth`]: API-key authentication as a tower layer any `axum::Router` can wear. Keys come
//!   from a file and/or an environment variable, are compared in constant time, and are never
//!   logged or echoed. Configured-but-empty key sources refuse to start: a service that was meant
//!   to be protected never runs open.
//! - [`listen`]: the accept loop of every listener: connection cap, header/idle/body timeouts,
//!   bounded drain on shutdown, `Connection: close` after early refusals.
//! - [`shutdown`]: one future that resolves on Ctrl-C or SIGTERM, to pass to the server's
//!   graceful shutdown and to background workers.
//! - [`ErrorBody`]: the JSON shape of every error a ragwall service answers with, so clients
//!   parse one format whichever layer refused them.

pub mod auth;
pub mod listen;
pub mod shutdown;

use serde::{Deserialize, Serialize};

/// The HTTP method as a label: the methods ragwall's services and Qdrant's API use, or `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Header carrying the request id, set on every request and echoed on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// `{"error": {"kind": …, "message": …, "request_id": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// One error: a stable machine-readable `kind`, a message for humans, and the request id to
/// find the matching log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable identifier (`unauthorized`, `malformed_json`, `overloaded`…).
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl ErrorBody {
    pub fn new(kind: &str, message: impl Into<String>, request_id: Option<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                kind: kind.to_owned(),
                message: message.into(),
                request_id,
            },
        }
    }
}

/// The request id of a request (set by the request-id layer), if any.
pub fn request_id<B>(req: &::http::Request<B>) -> Option<String> {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}
