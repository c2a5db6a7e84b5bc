//! API-key authentication: `Authorization: Bearer <key>`, as a tower layer.
//!
//! Security decisions, in one place:
//! - **Where keys come from.** A file (one key per line, blank lines and `#` comments ignored)
//!   and/or an environment variable (keys separated by commas or whitespace). Never from the
//!   TOML config itself, which is often committed, printed by `check-config`, or logged. If any
//!   source is configured, authentication is on; a configured source that yields no key refuses
//!   to start, so a typo never runs the service open. Keys shorter than [`MIN_KEY_BYTES`] are
//!   refused.
//! - **Comparison.** Keys are stored as their SHA-256 and the presented token is hashed the same
//!   way, then compared with *every* stored digest using `subtle`'s constant-time equality, with
//!   no early exit: neither the position of a matching key nor the length of a key leaks
//!   through timing.
//! - **Never logged.** [`ApiKeys`]'s `Debug` prints only the number of keys; failures are logged
//!   with the reason (`missing`, `malformed`, `invalid`) and never the token. The
//!   `Authorization` header is removed from the request once accepted, so nothing behind the
//!   layer (handlers, a proxied upstream) ever sees ragwall's key.
//! - **Answer.** 401 with `WWW-Authenticate: Bearer` and a JSON [`ErrorBody`] of kind
//!   `unauthorized`, the same for a missing and a wrong key.
//!
//! Wrap any router: `router.layer(AuthLayer::new(keys))` protects every route and the fallback,
//! `router.route_layer(…)` only the matched routes.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::ErrorBody;

/// Shortest key accepted, in bytes: anything shorter is guessable.
pub const MIN_KEY_BYTES: usize = 16;

/// Where API keys come from (`[server.auth]`, and the proxy's equivalent). Authentication is on
/// when either source is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// File of API keys, one per line; blank lines and lines starting with `#` are ignored.
    pub keys_file: Option<PathBuf>,
    /// Name of an environment variable holding API keys separated by commas or whitespace
    /// (e.g. `RAGWALL_API_KEYS`). The variable's *name* goes in the config, never the keys.
    pub keys_env: Option<String>,
}

impl AuthConfig {
    pub fn enabled(&self) -> bool {
        self.keys_file.is_some() || self.keys_env.is_some()
    }
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read API key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("API key variable {0} is not set")]
    MissingEnv(String),
    #[error("{0} holds no API key; refusing to start unprotected")]
    Empty(String),
    #[error("an API key from {0} is shorter than {MIN_KEY_BYTES} bytes")]
    TooShort(String),
    #[error("an API key from {0} contains characters not allowed in an HTTP header")]
    NotToken(String),
}

/// SHA-256 digests of the accepted keys. Cheap to share behind an `Arc`.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.digests.len())
            .finish()
    }
}

impl ApiKeys {
    /// Loads the keys `cfg` names; `Ok(None)` when authentication is off.
    pub fn from_config(cfg: &AuthConfig) -> Result<Option<Self>, AuthError> {
        if !cfg.enabled() {
            return Ok(None);
        }
        let mut keys = ApiKeys::default();
        if let Some(path) = &cfg.keys_file {
            let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
                path: path.clone(),
                source,
            })?;
            warn_if_world_readable(path);
            let origin = path.display().to_string();
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'));
            keys.extend(lines, &origin)?;
        }
        if let Some(var) = &cfg.keys_env {
            let text = std::env::var(var).map_err(|_| AuthError::MissingEnv(var.clone()))?;
            let parts = text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty());
            keys.extend(parts, &format!("${var}"))?;
        }
        Ok(Some(keys))
    }

    /// Keys given directly (tests, embedding applications).
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Result<Self, AuthError> {
        let mut k = ApiKeys::default();
        k.extend(keys, "the key list")?;
        Ok(k)
    }

    fn extend<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a str>,
        origin: &str,
    ) -> Result<(), AuthError> {
        let before = self.digests.len();
        for key in keys {
            if key.len() < MIN_KEY_BYTES {
                return Err(AuthError::TooShort(origin.to_owned()));
            }
            // Keys travel in a header: visible ASCII only, so every key can actually be sent.
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(AuthError::NotToken(origin.to_owned()));
            }
            self.digests.push(Sha256::digest(key.as_bytes()).into());
        }
        if self.digests.len() == before {
            return Err(AuthError::Empty(origin.to_owned()));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of the keys, in time independent of which key (if any) matches.
    pub fn verify(&self, token: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(token).into();
        let matched = self
            .digests
            .iter()
            .fold(Choice::from(0), |acc, d| acc | d.ct_eq(&presented));
        matched.into()
    }

    /// Checks a request's `Authorization` header.
    pub fn check(&self, headers: &::http::HeaderMap) -> Result<(), Rejection> {
        let mut values = headers.get_all(::http::header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return Err(Rejection::Missing);
        };
        if values.next().is_some() {
            return Err(Rejection::Malformed);
        }
        let value = value.as_bytes();
        let token = match value.iter().position(|&b| b == b' ') {
            Some(i) if value[..i].eq_ignore_ascii_case(b"bearer") => value[i + 1..].trim_ascii(),
            _ => return Err(Rejection::Malformed),
        };
        if self.verify(token) {
            Ok(())
        } else {
            Err(Rejection::Invalid)
        }
    }
}

#[cfg(unix)]
fn warn_if_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path)
        && m.permissions().mode() & 0o004 != 0
    {
        tracing::warn!(path = %path.display(), "API key file is world-readable; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_: &Path) {}

/// Why a request was refused. Clients get the same answer for all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Malformed,
    Invalid,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Missing => "missing",
            Rejection::Malformed => "malformed",
            Rejection::Invalid => "invalid",
        }
    }

    /// 401, `WWW-Authenticate: Bearer`, JSON body of kind `unauthorized`.
    pub fn response(self, request_id: Option<String>) -> Response {
        let body = ErrorBody::new(
            "unauthorized",
            "missing or invalid API key (expected Authorization: Bearer <key>)",
            request_id,
        );
        let mut res = (::http::StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        let challenge = match self {
            Rejection::Missing => "Bearer realm=\"ragwall\"",
            _ => "Bearer realm=\"ragwall\", error=\"invalid_token\"",
        };
        res.headers_mut().insert(
            ::http::header::WWW_AUTHENTICATE,
            ::http::HeaderValue::from_static(challenge),
        );
        res
    }
}

/// Tower layer requiring a valid API key on every request it wraps.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    keys: Arc<ApiKeys>,
}

impl AuthLayer {
    pub fn new(keys: Arc<ApiKeys>) -> Self {
        AuthLayer { keys }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            keys: Arc::clone(&self.keys),
        }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    keys: Arc<ApiKeys>,
}

impl<S, B> tower::Service<::http::Request<B>> for Auth<S>
where
    S: tower::Service<::http::Request<B>, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: ::http::Request<B>) -> Self::Future {
        match self.keys.check(req.headers()) {
            Ok(()) => {
                req.headers_mut().remove(::http::header::AUTHORIZATION);
                Box::pin(self.inner.call(req))
            }
            Err(why) => {
                tracing::warn!(
                    reason = why.as_str(),
                    method = %req.method(),
                    path = req.uri().path(),
                    "request refused: API key {}",
                    why.as_str()
                );
                let res = why.response(super::request_id(&req));
                Box::pin(async move { Ok(res) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

    const K1: &str = "k1-0123456789abcdef";
    const K2: &str = "k2-fedcba9876543210";

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn accepts_any_configured_key_and_nothing_else() {
        let keys = ApiKeys::from_keys([K1, K2]).expect("keys");
        assert!(keys.check(&headers(&format!("Bearer {K1}"))).is_ok());
        assert!(keys.check(&headers(&format!("bearer {K2}"))).is_ok());
        assert_eq!(keys.check(&HeaderMap::new()), Err(Rejection::Missing));
        assert_eq!(keys.check(&headers(K1)), Err(Rejection::Malformed));
        assert_eq!(
            keys.check(&headers(&format!("Basic {K1}"))),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            keys.check(&headers(&format!("Bearer {K1}x"))),
            Err(Rejection::Invalid)
        );
        assert_eq!(
            keys.check(&headers(&format!("Bearer {}", &K1[..K1.len() - 1]))),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn debug_never_shows_keys() {
        let keys = ApiKeys::from_keys([K1]).expect("keys");
        let dbg = format!("{keys:?}");
        assert!(!dbg.contains(K1) && dbg.contains("keys: 1"), "{dbg}");
    }

    #[test]
    fn short_empty_and_unset_sources_refuse_to_start() {
        assert!(matches!(
            ApiKeys::from_keys(["short"]),
            Err(AuthError::TooShort(_))
        ));
        assert!(matches!(
            ApiKeys::from_keys(["has a space in it, long enough"]),
            Err(AuthError::NotToken(_))
        ));
        let dir = std::env::temp_dir().join(format!("ragwall-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("keys");
        std::fs::write(&file, "# only a comment\n\n").expect("write");
        let cfg = AuthConfig {
            keys_file: Some(file.clone()),
            keys_env: None,
        };
        assert!(matches!(
            ApiKeys::from_config(&cfg),
            Err(AuthError::Empty(_))
        ));
        std::fs::write(&file, format!("# ops key\n{K1}\n  {K2}  \n")).expect("write");
        let keys = ApiKeys::from_config(&cfg).expect("ok").expect("enabled");
        assert_eq!(keys.len(), 2);
        let cfg = AuthConfig {
            keys_file: None,
            keys_env: Some("RAGWALL_TEST_SURELY_UNSET_VARIABLE".into()),
        };
        assert!(matches!(
            ApiKeys::from_config(&cfg),
            Err(AuthError::MissingEnv(_))
        ));
        assert!(
            ApiKeys::from_config(&AuthConfig::default())
                .expect("ok")
                .is_none()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
