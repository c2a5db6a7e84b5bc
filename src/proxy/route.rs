//! Request paths: one canonical form that the proxy both reasons about and forwards.
//!
//! The proxy decides which collection a response belongs to (text fields, policy overrides,
//! stamp binding) and whether a request is an upsert (ingestion scanning) from the path. If it
//! read the path one way and Qdrant another, a client could pick the weaker reading, so the path
//! is canonicalized first and the canonical path is what goes upstream: empty segments (double or
//! trailing slashes) are dropped, each segment is percent-decoded once and re-encoded, and
//! segments that are `.`/`..`, hold `/`, `\` or control characters after decoding, or are not
//! UTF-8 are refused (400). Route words (`collections`, `points`, `batch`, `payload`) are matched
//! case-insensitively. Response scanning does not depend on any of this: it goes by shape.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Characters left as they are when re-encoding a segment (RFC 3986 unreserved and sub-delims
/// that Qdrant's router reads literally).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':')
    .remove(b'@')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=');

/// What kind of write a request is, for ingestion scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `PUT /collections/{c}/points`.
    Upsert,
    /// `POST /collections/{c}/points/batch`.
    Batch,
    /// `POST|PUT /collections/{c}/points/payload` (set / overwrite payload).
    SetPayload,
}

/// A canonicalized request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Canonical path to forward (always starts with `/`).
    pub path: String,
    /// Raw query string, forwarded as is.
    pub query: Option<String>,
    /// Decoded collection name from `/collections/{c}/…`.
    pub collection: Option<String>,
    pub write: Option<Write>,
    /// A snapshot download (`GET …/snapshots/{name}`): a file holding every payload of a
    /// collection, which the proxy cannot scan; refused unless `allow_snapshots`, then streamed.
    pub snapshot_download: bool,
}

impl Target {
    /// Whether a response to this path may carry points (every collection route but snapshot
    /// downloads): such a response must be JSON, or it is not passed on as scanned.
    pub fn may_carry_points(&self) -> bool {
        self.collection.is_some() && !self.snapshot_download
    }

    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Canonicalizes `path` (without query) for `method`.
pub fn canonicalize(
    method: &http::Method,
    path: &str,
    query: Option<&str>,
) -> Result<Target, String> {
    let mut segs: Vec<String> = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| format!("path segment {raw:?} is not UTF-8"))?;
        if seg == "."
            || seg == ".."
            || seg.contains(['/', '\\'])
            || seg.chars().any(char::is_control)
        {
            return Err(format!("path segment {raw:?} is not allowed"));
        }
        segs.push(seg.into_owned());
    }
    let canonical = if segs.is_empty() {
        "/".to_owned()
    } else {
        segs.iter()
            .map(|s| format!("/{}", utf8_percent_encode(s, SEGMENT)))
            .collect()
    };
    let word = |i: usize, w: &str| segs.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    let collection = (word(0, "collections") && segs.len() >= 2).then(|| segs[1].clone());
    let points = collection.is_some() && word(2, "points");
    let write = match (segs.len(), method) {
        (3, &http::Method::PUT) if points => Some(Write::Upsert),
        (4, &http::Method::POST) if points && word(3, "batch") => Some(Write::Batch),
        (4, &http::Method::POST | &http::Method::PUT) if points && word(3, "payload") => {
            Some(Write::SetPayload)
        }
        _ => None,
    };
    let n = segs.len();
    // `…/snapshots/{name}` (collection, shard and full snapshots) and `…/shards/{id}/snapshot`
    // (a shard snapshot made and streamed on the fly).
    let snapshot_download = method == http::Method::GET
        && n >= 2
        && ((segs[n - 2].eq_ignore_ascii_case("snapshots")
            && !segs[n - 1].eq_ignore_ascii_case("recover")
            && !segs[n - 1].eq_ignore_ascii_case("upload"))
            || (segs[n - 1].eq_ignore_ascii_case("snapshot")
                && n >= 3
                && segs[n - 3].eq_ignore_ascii_case("shards")));
    Ok(Target {
        path: canonical,
        query: query.map(str::to_owned),
        collection,
        write,
        snapshot_download,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn t(m: Method, p: &str) -> Target {
        canonicalize(&m, p, None).expect("valid")
    }

    #[test]
    fn encodings_of_the_same_path_are_one_path() {
        let want = t(Method::POST, "/collections/docs/points/search");
        for p in [
            "//collections//docs/points/search/",
            "/collections/d%6Fcs/points/search",
            "/collections/%64%6f%63%73/points/%73earch",
        ] {
            let got = t(Method::POST, p);
            assert_eq!(got.path, want.path, "{p}");
            assert_eq!(got.collection.as_deref(), Some("docs"), "{p}");
        }
        assert_eq!(
            t(Method::POST, "/COLLECTIONS/docs/points/search")
                .collection
                .as_deref(),
            Some("docs")
        );
        assert_eq!(
            t(Method::GET, "/collections/my%20c").path,
            "/collections/my%20c"
        );
        assert_eq!(t(Method::GET, "").path, "/");
    }

    #[test]
    fn snapshot_downloads_are_recognized() {
        for p in [
            "/collections/docs/snapshots/docs-1.snapshot",
            "/collections/docs/shards/0/snapshots/s.snapshot",
            "/snapshots/full.snapshot",
            "/collections/docs/SNAPSHOTS/x",
            "/collections/docs/shards/0/snapshot",
        ] {
            assert!(t(Method::GET, p).snapshot_download, "{p}");
        }
        for (m, p) in [
            (Method::GET, "/collections/docs/snapshots"),
            (Method::POST, "/collections/docs/snapshots/upload"),
            (Method::PUT, "/collections/docs/snapshots/recover"),
            (Method::DELETE, "/collections/docs/snapshots/x"),
            (Method::GET, "/collections/docs/points/1"),
        ] {
            assert!(!t(m.clone(), p).snapshot_download, "{m} {p}");
        }
        assert!(t(Method::GET, "/collections/docs/points/1").may_carry_points());
        assert!(!t(Method::GET, "/telemetry").may_carry_points());
    }

    #[test]
    fn traversal_and_smuggling_are_refused() {
        for p in [
            "/collections/../collections/docs",
            "/collections/%2e%2e/x",
            "/collections/a%2Fb/points",
            "/collections/a%5Cb/points",
            "/collections/a%00b/points",
            "/collections/%ff/points",
        ] {
            assert!(canonicalize(&Method::GET, p, None).is_err(), "{p}");
        }
    }

    #[test]
    fn writes_are_recognized_in_any_spelling() {
        assert_eq!(
            t(Method::PUT, "/collections/docs/points").write,
            Some(Write::Upsert)
        );
        assert_eq!(
            t(Method::PUT, "/collections/docs/Points/").write,
            Some(Write::Upsert)
        );
        assert_eq!(
            t(Method::POST, "/collections/docs/points/batch").write,
            Some(Write::Batch)
        );
        assert_eq!(
            t(Method::PUT, "/collections/docs/points/payload").write,
            Some(Write::SetPayload)
        );
        assert_eq!(
            t(Method::POST, "/collections/docs/points").write,
            None,
            "retrieve"
        );
    }
}
