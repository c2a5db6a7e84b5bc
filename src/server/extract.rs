//! Reading a JSON request body so that each way it can be wrong is told apart: not JSON at all,
//! not UTF-8, too large, or JSON of the wrong shape (see [`super::errors`] for the statuses).
//!
//! axum's `Json` folds invalid UTF-8 into "syntax error" and answers in plain text; this extractor
//! reads the bytes itself (bounded by `DefaultBodyLimit`, set from `[server] max_body_bytes`),
//! checks UTF-8, then parses with serde and sorts the error by serde's category.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// A JSON body of type `T`, or the precise [`ApiError`].
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Whether `Content-Type` is `application/json` or `application/*+json`.
fn is_json(req: &Request) -> bool {
    let Some(ct) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Parses UTF-8 JSON bytes into `T`, sorting failures into their [`ApiError`].
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ApiError::InvalidUtf8(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidRequest(e.to_string()),
        _ => ApiError::MalformedJson(e.to_string()),
    })
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge { max: limit }
            } else {
                ApiError::BodyRead(rejection.body_text())
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// The body cap in force, put in request extensions so errors can name it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        n: u32,
    }

    #[test]
    fn failures_are_sorted_by_cause() {
        assert!(matches!(parse::<T>(b"{\"n\": 1}"), Ok(T { n: 1 })));
        assert!(matches!(
            parse::<T>(b"{\"n\": "),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<T>(b"not json"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            parse::<T>(b"{\"n\": \"x\"}"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse::<T>(b"{\"m\": 1}"),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse::<T>(b"{\"n\": 1, \"\xff\": 2}"),
            Err(ApiError::InvalidUtf8(_))
        ));
    }
}
