//! Stamps: a verdict bound to the exact text it judged, signed with a key only ragwall holds, so
//! a point scanned once (by the offline scanner or at ingestion) is not scanned again on every
//! read, and nobody else can make a point look scanned.
//!
//! # Where a stamp lives
//!
//! In the point's payload under the key [`PAYLOAD_KEY`] (`"ragwall"`), as a JSON object:
//!
//! ```json
//! {"v": 1, "action": "allow", "score": 0.012345, "reasons": [],
//!  "sha256": "<64 hex>", "detector": "onnx:…+rules:core@1.0.0", "policy": "default-1",
//!  "collection": "docs", "mac": "<64 hex>"}
//! ```
//!
//! - `v`: format version, always `1`.
//! - `action`: `allow`, `tag`, `quarantine` or `block`: the verdict for the whole point.
//! - `score`: highest detector score, in `[0, 1]`, rounded to 6 decimals (the MAC covers
//!   `round(score × 1e6)` as an integer, so float printing cannot break verification).
//! - `reasons`: the verdict's reason codes (`score`, `rule.<id>`, `finding.<kind>`…).
//! - `sha256`: the [content hash](content_sha256) of the point's text fields.
//! - `detector`: the detector id (`Firewall::detector_id`): rule packs and model sha256.
//! - `policy`: the policy version (`[policy] version`).
//! - `collection`: the collection the point was scanned for (policies differ per collection);
//!   `""` when unknown.
//! - `mac`: lower-case hex HMAC-SHA256 over the canonical encoding below.
//!
//! # Canonical encodings
//!
//! Both use netstrings: `ns(x)` = the decimal byte length of UTF-8 `x`, `:`, the bytes, `,`
//! (`ns("abc")` = `3:abc,`).
//!
//! - Content hash: `sha256( ns(path₁) ns(text₁) ns(path₂) ns(text₂) … )` over the point's text
//!   fields sorted by path (bytewise), `path` being the concrete JSON path of the field (`text`,
//!   `chunk.body`, `tags[1]`) and the `ragwall` key itself never included. Lower-case hex.
//! - MAC input: `"ragwall-stamp\n"` then `ns("1")`, `ns(action)`, `ns(score_micros)`,
//!   `ns(count of reasons)`, `ns(reason)` for each reason in order, `ns(sha256)`,
//!   `ns(detector)`, `ns(policy)`, `ns(collection)`.
//!
//! In Python: `ns = lambda s: str(len(s.encode())).encode() + b":" + s.encode() + b","` and
//! `hmac.new(key, msg, hashlib.sha256).hexdigest()`.
//!
//! # Trust
//!
//! A stamp is trusted only when its MAC verifies under the key (compared in constant time), its
//! content hash equals the hash of the point's current text, and its detector, policy version and
//! collection equal the current ones. Anything else is a [`Mismatch`] and the point is scanned
//! again. Without the key a client can copy a stamp but not change a byte of what it covers; a
//! copied stamp only vouches for the very text it was made for. The key is at least
//! [`MIN_KEY_BYTES`] bytes, read from a file or the `RAGWALL_STAMP_KEY` variable, and never
//! logged.

use std::path::Path;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::Action;

/// Payload key under which stamps (and the proxy's tags) live.
pub const PAYLOAD_KEY: &str = "ragwall";

/// Format version written into `v`.
pub const VERSION: u32 = 1;

/// Environment variable holding the key when no key file is configured.
pub const KEY_ENV: &str = "RAGWALL_STAMP_KEY";

/// Shortest key accepted.
pub const MIN_KEY_BYTES: usize = 32;

const MAC_DOMAIN: &[u8] = b"ragwall-stamp\n";

type HmacSha256 = Hmac<Sha256>;

/// The secret that signs stamps. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct StampKey(Vec<u8>);

impl std::fmt::Debug for StampKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StampKey(<redacted>)")
    }
}

/// Why a key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read stamp key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("stamp key from {from} is {got} bytes; at least {MIN_KEY_BYTES} are required")]
    TooShort { from: String, got: usize },
}

impl StampKey {
    /// A key from bytes (surrounding ASCII whitespace removed).
    pub fn new(bytes: &[u8], from: &str) -> Result<Self, KeyError> {
        let bytes = bytes.trim_ascii();
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort {
                from: from.to_owned(),
                got: bytes.len(),
            });
        }
        Ok(StampKey(bytes.to_vec()))
    }

    /// The key from `file` if given, else from `RAGWALL_STAMP_KEY`, else `None` (stamps are then
    /// neither written nor trusted).
    pub fn load(file: Option<&Path>) -> Result<Option<Self>, KeyError> {
        if let Some(path) = file {
            let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })?;
            return Self::new(&bytes, &path.display().to_string()).map(Some);
        }
        match std::env::var_os(KEY_ENV) {
            Some(v) if !v.is_empty() => Self::new(v.as_encoded_bytes(), KEY_ENV).map(Some),
            _ => Ok(None),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; this cannot fail.
        <HmacSha256 as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

/// A signed verdict for one point. See the module docs for the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stamp {
    pub v: u32,
    pub action: Action,
    pub score: f64,
    pub reasons: Vec<String>,
    pub sha256: String,
    pub detector: String,
    pub policy: String,
    #[serde(default)]
    pub collection: String,
    pub mac: String,
}

/// What a stamp must match to be trusted.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub sha256: &'a str,
    pub detector: &'a str,
    pub policy: &'a str,
    pub collection: &'a str,
}

/// Why a stamp is not trusted. The label is stable (metrics, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("not a stamp")]
    Malformed,
    #[error("unknown stamp version")]
    Version,
    #[error("MAC does not verify")]
    Mac,
    #[error("content changed since the stamp")]
    Content,
    #[error("stamped by another detector")]
    Detector,
    #[error("stamped under another policy version")]
    Policy,
    #[error("stamped for another collection")]
    Collection,
}

impl Mismatch {
    pub fn label(self) -> &'static str {
        match self {
            Mismatch::Malformed => "malformed",
            Mismatch::Version => "version",
            Mismatch::Mac => "mac",
            Mismatch::Content => "content",
            Mismatch::Detector => "detector",
            Mismatch::Policy => "policy",
            Mismatch::Collection => "collection",
        }
    }
}

/// Appends the netstring of `s`.
fn ns(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(s.as_bytes());
    out.push(b',');
}

/// Content hash of a point's text fields (`(path, text)` in any order), lower-case hex.
///
/// Fields are sorted by path first: Qdrant's REST API keeps payload keys in insertion order but
/// its gRPC API carries payloads as protobuf maps, which have no order, so a hash in payload
/// order would differ between the offline scanner (gRPC) and the proxy (REST) for the same
/// point. Concrete paths are unique within a payload, so the sorted list is still canonical.
pub fn content_sha256<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut fields: Vec<(&str, &str)> = fields.into_iter().collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut buf = Vec::new();
    for (path, text) in fields {
        ns(&mut buf, path);
        ns(&mut buf, text);
    }
    hex::encode(Sha256::digest(&buf))
}

fn score_micros(score: f64) -> u64 {
    (score.clamp(0.0, 1.0) * 1e6).round() as u64
}

impl Stamp {
    /// Signs a verdict. `score` is rounded to 6 decimals.
    pub fn sign(
        key: &StampKey,
        action: Action,
        score: f32,
        reasons: Vec<String>,
        expected: Expected<'_>,
    ) -> Stamp {
        let mut stamp = Stamp {
            v: VERSION,
            action,
            score: score_micros(f64::from(score)) as f64 / 1e6,
            reasons,
            sha256: expected.sha256.to_owned(),
            detector: expected.detector.to_owned(),
            policy: expected.policy.to_owned(),
            collection: expected.collection.to_owned(),
            mac: String::new(),
        };
        let mut mac = key.mac();
        mac.update(&stamp.canonical());
        stamp.mac = hex::encode(mac.finalize().into_bytes());
        stamp
    }

    /// Parses the value found under [`PAYLOAD_KEY`].
    pub fn from_value(v: &serde_json::Value) -> Result<Stamp, Mismatch> {
        Stamp::deserialize(v).map_err(|_| Mismatch::Malformed)
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The bytes the MAC covers.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = MAC_DOMAIN.to_vec();
        ns(&mut out, &self.v.to_string());
        ns(&mut out, self.action.as_str());
        ns(&mut out, &score_micros(self.score).to_string());
        ns(&mut out, &self.reasons.len().to_string());
        for r in &self.reasons {
            ns(&mut out, r);
        }
        ns(&mut out, &self.sha256);
        ns(&mut out, &self.detector);
        ns(&mut out, &self.policy);
        ns(&mut out, &self.collection);
        out
    }

    /// Checks the MAC first (so nothing about an unsigned stamp is believed), then every bound
    /// value.
    pub fn verify(&self, key: &StampKey, expected: Expected<'_>) -> Result<(), Mismatch> {
        if self.v != VERSION {
            return Err(Mismatch::Version);
        }
        let tag = hex::decode(&self.mac).map_err(|_| Mismatch::Mac)?;
        let mut mac = key.mac();
        mac.update(&self.canonical());
        mac.verify_slice(&tag).map_err(|_| Mismatch::Mac)?;
        if self.sha256 != expected.sha256 {
            return Err(Mismatch::Content);
        }
        if self.detector != expected.detector {
            return Err(Mismatch::Detector);
        }
        if self.policy != expected.policy {
            return Err(Mismatch::Policy);
        }
        if self.collection != expected.collection {
            return Err(Mismatch::Collection);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> StampKey {
        StampKey::new(b"0123456789abcdef0123456789abcdef\n", "test").expect("key")
    }

    fn expected(sha: &str) -> Expected<'_> {
        Expected {
            sha256: sha,
            detector: "rules:core@1",
            policy: "p1",
            collection: "docs",
        }
    }

    #[test]
    fn a_signed_stamp_verifies_and_survives_json() {
        let sha = content_sha256([("text", "hello")]);
        let s = Stamp::sign(
            &key(),
            Action::Tag,
            0.4,
            vec!["score".into()],
            expected(&sha),
        );
        let back = Stamp::from_value(&s.to_value()).expect("parses");
        assert_eq!(back.verify(&key(), expected(&sha)), Ok(()));
        assert_eq!(back.score, 0.4);
    }

    #[test]
    fn any_change_is_a_mismatch() {
        let sha = content_sha256([("text", "hello")]);
        let s = Stamp::sign(&key(), Action::Quarantine, 0.9, vec![], expected(&sha));
        let mut forged = s.clone();
        forged.action = Action::Allow;
        assert_eq!(forged.verify(&key(), expected(&sha)), Err(Mismatch::Mac));
        let mut forged = s.clone();
        forged.score = 0.1;
        assert_eq!(forged.verify(&key(), expected(&sha)), Err(Mismatch::Mac));
        let other = content_sha256([("text", "hello!")]);
        assert_eq!(s.verify(&key(), expected(&other)), Err(Mismatch::Content));
        let e = Expected {
            policy: "p2",
            ..expected(&sha)
        };
        assert_eq!(s.verify(&key(), e), Err(Mismatch::Policy));
        let e = Expected {
            detector: "onnx:x",
            ..expected(&sha)
        };
        assert_eq!(s.verify(&key(), e), Err(Mismatch::Detector));
        let e = Expected {
            collection: "web",
            ..expected(&sha)
        };
        assert_eq!(s.verify(&key(), e), Err(Mismatch::Collection));
        let other_key = StampKey::new(&[b'k'; 40], "t").expect("key");
        assert_eq!(s.verify(&other_key, expected(&sha)), Err(Mismatch::Mac));
        assert!(Stamp::from_value(&serde_json::json!({"action": "allow"})).is_err());
    }

    #[test]
    fn content_hash_separates_fields() {
        assert_ne!(content_sha256([("a", "bc")]), content_sha256([("ab", "c")]));
        // Payload order does not matter (gRPC payloads are unordered maps); paths do.
        assert_eq!(
            content_sha256([("a", "x"), ("b", "y")]),
            content_sha256([("b", "y"), ("a", "x")])
        );
        assert_ne!(
            content_sha256([("a", "x"), ("b", "y")]),
            content_sha256([("a", "y"), ("b", "x")])
        );
        // Pinned, so the offline scanner's implementation can be checked against it.
        let mut buf = Vec::new();
        ns(&mut buf, "héllo");
        assert_eq!(buf, "6:héllo,".as_bytes());
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert!(StampKey::new(b"short", "x").is_err());
        assert_eq!(format!("{:?}", key()), "StampKey(<redacted>)");
    }
}
