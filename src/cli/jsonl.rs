//! Reading JSONL input line by line without losing any: each non-blank line becomes either a
//! parsed record or a [`LineError`] that says exactly what was wrong with it.

use std::io::BufRead;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// What went wrong with one input line.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineError {
    pub kind: &'static str,
    pub message: String,
}

/// One input line: its number, the `id` field if it could be read, and the record or error.
#[derive(Debug)]
pub struct Line<T> {
    pub number: usize,
    pub id: Option<serde_json::Value>,
    pub record: Result<T, LineError>,
}

/// Parses one line's bytes into `T`.
pub fn parse<T: DeserializeOwned>(number: usize, bytes: &[u8], what: &str) -> Line<T> {
    let bad = |kind, message| Line {
        number,
        id: None,
        record: Err(LineError { kind, message }),
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return bad("invalid_utf8", format!("line is not valid UTF-8: {e}")),
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return bad("invalid_json", format!("line is not valid JSON: {e}")),
    };
    let id = value.get("id").cloned();
    let record = serde_json::from_value::<T>(value).map_err(|e| LineError {
        kind: "invalid_record",
        message: format!("line is not {what}: {e}"),
    });
    Line { number, id, record }
}

/// Iterates over the non-blank lines of `input`, parsed as `T`. I/O errors end the iteration
/// with an `Err`.
pub fn lines<T: DeserializeOwned>(
    mut input: impl BufRead,
    what: &'static str,
) -> impl Iterator<Item = std::io::Result<Line<T>>> {
    let mut number = 0usize;
    let mut buf = Vec::new();
    std::iter::from_fn(move || {
        loop {
            buf.clear();
            match input.read_until(b'\n', &mut buf) {
                Ok(0) => return None,
                Ok(_) => {
                    number += 1;
                    if buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok(parse(number, &buf, what)));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::Chunk;

    #[test]
    fn every_kind_of_bad_line_is_named() {
        let input: &[u8] = b"{\"id\":1,\"text\":\"ok\"}\n\n\xff\xfe\n{not json\n{\"id\":7}\n";
        let got: Vec<Line<Chunk>> = lines(input, "a chunk").map(|l| l.expect("io")).collect();
        assert_eq!(got.len(), 4);
        assert!(got[0].record.is_ok());
        assert_eq!(got[1].number, 3);
        let kinds: Vec<&str> = got[1..]
            .iter()
            .map(|l| l.record.as_ref().err().map(|e| e.kind).unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["invalid_utf8", "invalid_json", "invalid_record"]);
        assert_eq!(got[3].id, Some(serde_json::json!(7)));
        assert!(
            got[3]
                .record
                .as_ref()
                .err()
                .map(|e| e.message.contains("text"))
                .unwrap_or(false)
        );
    }
}
