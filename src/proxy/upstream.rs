//! The connection to Qdrant: forwards one request and brings back its response, buffered (and
//! decoded) when it may need scanning, streamed when its content type says it cannot carry
//! points (snapshots).
//!
//! Headers are forwarded as they came (Qdrant's `api-key` and `authorization` included) except
//! hop-by-hop headers, `host`, `content-length` (recomputed), ragwall's own API key, and
//! `accept-encoding`, which is narrowed to the encodings the proxy can decode (gzip, deflate,
//! identity): an encoding the proxy could not read would be a payload it could not scan.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::proxy::config::ProxyConfig;
use crate::proxy::errors::ProxyError;

/// Header carrying ragwall's own API key; never forwarded to Qdrant.
pub const API_KEY_HEADER: &str = "x-ragwall-api-key";

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The response's body: buffered (still encoded as Qdrant sent it) or streamed.
#[derive(Debug)]
pub enum Body {
    Buffered(Bytes),
    Streamed(hyper::body::Incoming),
}

#[derive(Debug)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

/// A Qdrant REST endpoint.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    authority: Authority,
    prefix: String,
    timeout: Duration,
    max_body: usize,
}

impl Upstream {
    /// Parses `http://host:port[/prefix]`.
    pub fn parse_base(url: &str) -> Result<(Authority, String), String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("proxy.upstream = {url:?}: {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(format!(
                "proxy.upstream = {url:?}: only http:// upstreams are supported"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("proxy.upstream = {url:?}: no host"))?;
        if uri.query().is_some() {
            return Err(format!("proxy.upstream = {url:?}: no query string allowed"));
        }
        Ok((authority, uri.path().trim_end_matches('/').to_owned()))
    }

    pub fn new(cfg: &ProxyConfig) -> Result<Self, String> {
        let (authority, prefix) = Self::parse_base(&cfg.upstream)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Upstream {
            client,
            authority,
            prefix,
            timeout: Duration::from_secs(cfg.upstream_timeout_secs),
            max_body: cfg.max_body_bytes,
        })
    }

    /// Sends one request; buffers the response body unless `stream` (snapshot downloads, which
    /// the caller decided from the route, never from what the upstream says the body is).
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Bytes,
        stream: bool,
    ) -> Result<UpstreamResponse, ProxyError> {
        strip_hop_by_hop(&mut headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(API_KEY_HEADER);
        let ae = narrow_accept_encoding(headers.get(header::ACCEPT_ENCODING));
        headers.insert(header::ACCEPT_ENCODING, ae);
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.prefix))
            .build()
            .map_err(|e| ProxyError::BadRequest(format!("invalid target: {e}")))?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| ProxyError::Internal(e.to_string()))?;
        *req.headers_mut() = headers;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ProxyError::UpstreamUnreachable(error_chain(&e)))?;
            let (parts, incoming) = resp.into_parts();
            let mut headers = parts.headers;
            strip_hop_by_hop(&mut headers);
            if stream {
                return Ok(UpstreamResponse {
                    status: parts.status,
                    headers,
                    body: Body::Streamed(incoming),
                });
            }
            let bytes = Limited::new(incoming, self.max_body)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        ProxyError::ResponseTooLarge(self.max_body)
                    } else {
                        ProxyError::UpstreamBody(error_chain(&*e))
                    }
                })?
                .to_bytes();
            Ok(UpstreamResponse {
                status: parts.status,
                headers,
                body: Body::Buffered(bytes),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProxyError::UpstreamTimeout(self.timeout))?
    }

    pub fn max_body(&self) -> usize {
        self.max_body
    }
}

/// The media type of `content-type`, lower-cased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next()?.trim().to_ascii_lowercase())
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        headers.remove(n);
    }
    for n in HOP_BY_HOP {
        headers.remove(n);
    }
}

/// The client's `accept-encoding` restricted to what the proxy decodes; `identity` if nothing
/// is left.
fn narrow_accept_encoding(v: Option<&HeaderValue>) -> HeaderValue {
    let kept: Vec<&str> = v
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|item| {
            let coding = item.split(';').next().unwrap_or("").trim();
            ["gzip", "x-gzip", "deflate", "identity"]
                .iter()
                .any(|c| coding.eq_ignore_ascii_case(c))
        })
        .collect();
    if kept.is_empty() {
        return HeaderValue::from_static("identity");
    }
    HeaderValue::from_str(&kept.join(", ")).unwrap_or(HeaderValue::from_static("identity"))
}

/// Decodes a body by its `content-encoding` (gzip, deflate as zlib or raw, identity; stacked
/// encodings in reverse order), refusing to inflate past `max` bytes.
pub fn decode(headers: &HeaderMap, body: &Bytes, max: usize) -> Result<Bytes, ProxyError> {
    let codings: Vec<String> = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect();
    let mut data = body.clone();
    for coding in codings.iter().rev() {
        let mut out = Vec::new();
        let read = |r: &mut dyn Read, out: &mut Vec<u8>| {
            r.take(max as u64 + 1)
                .read_to_end(out)
                .map_err(|e| ProxyError::Unscannable(format!("bad {coding} body: {e}")))
        };
        match coding.as_str() {
            "gzip" | "x-gzip" => {
                read(&mut flate2::read::MultiGzDecoder::new(&data[..]), &mut out)?;
            }
            "deflate" => {
                // RFC 9110 says zlib; some servers send raw deflate. Try both.
                if read(&mut flate2::read::ZlibDecoder::new(&data[..]), &mut out).is_err() {
                    out.clear();
                    read(&mut flate2::read::DeflateDecoder::new(&data[..]), &mut out)?;
                }
            }
            other => {
                return Err(ProxyError::Unscannable(format!(
                    "unsupported content-encoding {other:?}"
                )));
            }
        }
        if out.len() > max {
            return Err(ProxyError::ResponseTooLarge(max));
        }
        data = Bytes::from(out);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn accept_encoding_is_narrowed() {
        let v = HeaderValue::from_static("br, gzip;q=0.8, zstd, deflate");
        assert_eq!(narrow_accept_encoding(Some(&v)), "gzip;q=0.8, deflate");
        assert_eq!(
            narrow_accept_encoding(Some(&HeaderValue::from_static("br"))),
            "identity"
        );
        assert_eq!(narrow_accept_encoding(None), "identity");
    }

    #[test]
    fn gzip_and_deflate_are_decoded_with_a_limit() {
        let text = b"{\"result\":[]}".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).expect("write");
        let gz = Bytes::from(gz.finish().expect("finish"));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(decode(&h, &gz, 1 << 20).expect("decodes"), &text[..]);
        assert!(matches!(
            decode(&h, &gz, 100),
            Err(ProxyError::ResponseTooLarge(100))
        ));
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(&text).expect("write");
        let raw = Bytes::from(raw.finish().expect("finish"));
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static("deflate"),
        );
        assert_eq!(decode(&h, &raw, 1 << 20).expect("decodes"), &text[..]);
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
        assert!(matches!(
            decode(&h, &raw, 1 << 20),
            Err(ProxyError::Unscannable(_))
        ));
        assert!(decode(&HeaderMap::new(), &raw, 1 << 20).is_ok());
    }

    #[test]
    fn bases_are_checked() {
        assert!(Upstream::parse_base("http://qdrant:6333").is_ok());
        assert_eq!(
            Upstream::parse_base("http://q:6333/base/").expect("ok").1,
            "/base"
        );
        assert!(Upstream::parse_base("https://q:6333").is_err());
        assert!(Upstream::parse_base("qdrant:6333").is_err());
    }
}
