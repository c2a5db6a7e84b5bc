//! Integers beyond 64 bits survive a rewrite byte for byte.
//!
//! The proxy parses a response into `serde_json::Value` to scan and rewrite it, and `Value` keeps
//! an integer only if it fits in `i64`/`u64`; a larger one becomes the nearest `f64` and would be
//! sent back as `1.2345678901234568e+29`. No Qdrant sends such ids, but the proxy passes through
//! what it does not need to change. Before parsing, each such integer literal (outside strings)
//! becomes a string holding a per-response marker and its digits; after serializing, each marked
//! string becomes the original digits again. Other numbers are left to `serde_json`, whose float
//! output is what Qdrant itself writes.

use std::borrow::Cow;

/// Marks the too-large integer literals of `json`; `None` when there are none (the common case:
/// nothing is copied).
pub fn protect(json: &[u8], marker: &str) -> Option<Vec<u8>> {
    let spans = big_integers(json);
    if spans.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(json.len() + spans.len() * (marker.len() + 2));
    let mut at = 0;
    for (start, end) in spans {
        out.extend_from_slice(&json[at..start]);
        out.push(b'"');
        out.extend_from_slice(marker.as_bytes());
        out.extend_from_slice(&json[start..end]);
        out.push(b'"');
        at = end;
    }
    out.extend_from_slice(&json[at..]);
    Some(out)
}

/// Turns the marked strings of a serialized document back into the integers they were.
pub fn restore<'a>(json: &'a [u8], marker: &str) -> Cow<'a, [u8]> {
    let needle = format!("\"{marker}");
    let Some(first) = find(json, needle.as_bytes(), 0) else {
        return Cow::Borrowed(json);
    };
    let mut out = Vec::with_capacity(json.len());
    let mut at = 0;
    let mut next = Some(first);
    while let Some(i) = next {
        let digits = i + needle.len();
        let mut end = digits;
        while end < json.len() && (json[end].is_ascii_digit() || json[end] == b'-') {
            end += 1;
        }
        if end < json.len() && json[end] == b'"' && end > digits {
            out.extend_from_slice(&json[at..i]);
            out.extend_from_slice(&json[digits..end]);
            at = end + 1;
        }
        next = find(json, needle.as_bytes(), end.max(i + 1));
    }
    out.extend_from_slice(&json[at..]);
    Cow::Owned(out)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Byte ranges of integer literals (no fraction, no exponent) that fit neither `i64` nor `u64`.
fn big_integers(json: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < json.len() {
        let b = json[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < json.len() && json[i].is_ascii_digit() {
                i += 1;
            }
            let is_float = i < json.len() && matches!(json[i], b'.' | b'e' | b'E');
            while i < json.len()
                && matches!(json[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            {
                i += 1;
            }
            if !is_float {
                let lit = std::str::from_utf8(&json[start..i]).unwrap_or("");
                if lit != "-" {
                    let fits = lit.parse::<i64>().is_ok() || lit.parse::<u64>().is_ok();
                    if !fits && lit.bytes().skip(1).all(|c| c.is_ascii_digit()) {
                        out.push((start, i));
                    }
                }
            }
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_integers_round_trip_through_a_rewrite() {
        let raw = br#"{"result":[{"id":123456789012345678901234567890,"score":0.5,"payload":{"t":"a \"99999999999999999999999\" string","n":-98765432109876543210987,"small":42,"f":1.5e300}}]}"#;
        let marker = "\u{E000}rw0123:";
        let protected = protect(raw, marker).expect("there are big integers");
        let mut v: serde_json::Value = serde_json::from_slice(&protected).expect("parses");
        v["result"][0]["payload"]["added"] = serde_json::json!(true);
        let out = serde_json::to_vec(&v).expect("serializes");
        let back = restore(&out, marker);
        let text = std::str::from_utf8(&back).expect("utf8");
        assert!(
            text.contains(r#""id":123456789012345678901234567890"#),
            "{text}"
        );
        assert!(text.contains(r#""n":-98765432109876543210987"#), "{text}");
        assert!(
            text.contains(r#"a \"99999999999999999999999\" string"#),
            "{text}"
        );
        assert!(text.contains(r#""small":42"#), "{text}");
        assert!(
            protect(
                br#"{"id":18446744073709551615,"x":-9223372036854775808}"#,
                marker
            )
            .is_none()
        );
    }
}
