//! Ingestion scanning: payloads in upserts are judged before Qdrant stores them.
//!
//! Writes recognized (by canonical path, see `route.rs`): upsert (`PUT …/points`, both the
//! `points` list and the columnar `batch` form), `POST …/points/batch` (its `upsert`,
//! `set_payload` and `overwrite_payload` operations) and set/overwrite payload
//! (`…/points/payload`). Policies ([`IngestPolicy`]):
//!
//! - `reject`: any point the policy would quarantine or block refuses the whole request (403),
//!   nothing is written.
//! - `tag`: every upserted point is written with a signed stamp of its verdict (needs the stamp
//!   key), so reads trust it and remove quarantined points without rescanning.
//! - `quarantine-collection`: flagged upserted points are written to
//!   `<collection><quarantine_suffix>` first (same request headers, `wait=true`), then the
//!   original request goes on without them; a flagged set/overwrite payload cannot be moved and
//!   is refused as with `reject`.
//!
//! Stamps are written on upserted points whenever a key is configured; set-payload writes are
//! merged by Qdrant into payloads the proxy does not see, so they are never stamped. Stamps sent
//! by the client are never trusted here and are overwritten.

use serde_json::{Map, Value, json};

use crate::chunk::ChunkId;
use crate::policy::Action;
use crate::proxy::config::IngestPolicy;
use crate::proxy::errors::ProxyError;
use crate::proxy::payload::Step;
use crate::proxy::route::Write;
use crate::proxy::scan::{PointDecision, Scanner};
use crate::proxy::shape;
use crate::stamp::PAYLOAD_KEY;

/// Where a written payload sits in the request.
#[derive(Debug, Clone, PartialEq)]
enum Holder {
    /// `points[index]` of the list at `list`.
    Points { list: Vec<Step>, index: usize },
    /// Column `index` of the columnar batch at `batch`.
    Columns { batch: Vec<Step>, index: usize },
    /// A set/overwrite payload (no point of its own).
    SetPayload,
}

#[derive(Debug, Clone)]
struct Entry {
    id: ChunkId,
    payload: Vec<Step>,
    holder: Holder,
}

fn key(steps: &[Step], k: &str) -> Vec<Step> {
    let mut s = steps.to_vec();
    s.push(Step::Key(k.to_owned()));
    s
}

fn idx(steps: &[Step], i: usize) -> Vec<Step> {
    let mut s = steps.to_vec();
    s.push(Step::Index(i));
    s
}

fn chunk_id(v: Option<&Value>) -> ChunkId {
    match v {
        Some(Value::Number(n)) => ChunkId::Num(n.clone()),
        Some(Value::String(s)) => ChunkId::Str(s.clone()),
        _ => ChunkId::Str("?".into()),
    }
}

/// The payloads of an upsert-like object (`{points: […]}` or `{batch: {…}}`) at `at`.
fn upsert_entries(doc: &Value, at: &[Step], out: &mut Vec<Entry>) {
    if let Some(Value::Array(points)) = shape::get(doc, &key(at, "points")) {
        for (i, p) in points.iter().enumerate() {
            if matches!(p.get("payload"), Some(Value::Object(_))) {
                out.push(Entry {
                    id: chunk_id(p.get("id")),
                    payload: key(&idx(&key(at, "points"), i), "payload"),
                    holder: Holder::Points {
                        list: key(at, "points"),
                        index: i,
                    },
                });
            }
        }
    }
    let batch = key(at, "batch");
    if let Some(Value::Array(payloads)) = shape::get(doc, &key(&batch, "payloads")) {
        let ids = shape::get(doc, &key(&batch, "ids"));
        for (i, p) in payloads.iter().enumerate() {
            if p.is_object() {
                out.push(Entry {
                    id: chunk_id(ids.and_then(|a| a.get(i))),
                    payload: idx(&key(&batch, "payloads"), i),
                    holder: Holder::Columns {
                        batch: batch.clone(),
                        index: i,
                    },
                });
            }
        }
    }
}

fn set_payload_entry(doc: &Value, at: &[Step], out: &mut Vec<Entry>) {
    if matches!(shape::get(doc, &key(at, "payload")), Some(Value::Object(_))) {
        out.push(Entry {
            id: ChunkId::Str("set_payload".into()),
            payload: key(at, "payload"),
            holder: Holder::SetPayload,
        });
    }
}

fn entries(doc: &Value, write: Write) -> Vec<Entry> {
    let mut out = Vec::new();
    match write {
        Write::Upsert => upsert_entries(doc, &[], &mut out),
        Write::SetPayload => set_payload_entry(doc, &[], &mut out),
        Write::Batch => {
            if let Some(Value::Array(ops)) = doc.get("operations") {
                for (i, op) in ops.iter().enumerate() {
                    let at = idx(&[Step::Key("operations".into())], i);
                    if op.get("upsert").is_some() {
                        upsert_entries(doc, &key(&at, "upsert"), &mut out);
                    }
                    for k in ["set_payload", "overwrite_payload"] {
                        if op.get(k).is_some() {
                            set_payload_entry(doc, &key(&at, k), &mut out);
                        }
                    }
                }
            }
        }
    }
    out
}

/// What to do with a write.
#[derive(Debug, Default)]
pub struct Plan {
    /// The request body to forward, when it changed.
    pub body: Option<Vec<u8>>,
    /// An upsert body for the quarantine collection, to send first.
    pub quarantine: Option<Vec<u8>>,
    pub flagged: usize,
    pub decisions: Vec<(Action, bool)>,
}

/// Scans a write and plans it. Synchronous: run on a blocking thread.
pub fn plan(
    scanner: &Scanner,
    policy: IngestPolicy,
    collection: Option<&str>,
    write: Write,
    mut doc: Value,
) -> Result<Plan, ProxyError> {
    let entries = entries(&doc, write);
    if entries.is_empty() {
        return Ok(Plan::default());
    }
    let payloads: Vec<(ChunkId, Map<String, Value>)> = entries
        .iter()
        .map(|e| {
            let p = match shape::get(&doc, &e.payload) {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            (e.id.clone(), p)
        })
        .collect();
    let refs: Vec<(ChunkId, &Map<String, Value>)> =
        payloads.iter().map(|(id, p)| (id.clone(), p)).collect();
    let decisions = scanner.decide(collection, &refs, false)?;
    let flagged = |d: &PointDecision| !d.action.passes();
    let mut plan = Plan {
        flagged: decisions.iter().filter(|d| flagged(d)).count(),
        decisions: decisions.iter().map(|d| (d.action, false)).collect(),
        ..Plan::default()
    };
    let refuse = |e: &Entry, d: &PointDecision| ProxyError::IngestRejected {
        id: crate::wrap::attribute_value(&e.id.to_string()),
        reasons: d.reasons.join(", "),
    };
    for (e, d) in entries.iter().zip(&decisions) {
        let movable = !matches!(e.holder, Holder::SetPayload);
        if flagged(d) && (policy == IngestPolicy::Reject || !movable) && policy != IngestPolicy::Tag
        {
            return Err(refuse(e, d));
        }
    }
    let mut changed = false;
    for (e, d) in entries.iter().zip(&decisions) {
        if matches!(e.holder, Holder::SetPayload) {
            continue;
        }
        if let (Some(stamp), Some(Value::Object(p))) = (
            scanner.stamp(collection, d),
            shape::get_mut(&mut doc, &e.payload),
        ) {
            p.insert(PAYLOAD_KEY.to_owned(), stamp);
            changed = true;
        }
    }
    if policy == IngestPolicy::QuarantineCollection && plan.flagged > 0 {
        let mut moved = Vec::new();
        // Reverse order so removing an element never moves one still to be removed.
        for (e, d) in entries.iter().zip(&decisions).rev() {
            if !flagged(d) {
                continue;
            }
            if let Some(p) = take_point(&mut doc, &e.holder) {
                moved.push(p);
            }
        }
        moved.reverse();
        plan.quarantine = Some(json!({ "points": moved }).to_string().into_bytes());
        changed = true;
    }
    if changed {
        plan.body =
            Some(serde_json::to_vec(&doc).map_err(|e| ProxyError::Internal(e.to_string()))?);
    }
    Ok(plan)
}

/// Removes the point at `holder` from `doc` and returns it as a `PointStruct`.
fn take_point(doc: &mut Value, holder: &Holder) -> Option<Value> {
    match holder {
        Holder::Points { list, index } => match shape::get_mut(doc, list) {
            Some(Value::Array(a)) if *index < a.len() => Some(a.remove(*index)),
            _ => None,
        },
        Holder::Columns { batch, index } => {
            let Some(Value::Object(b)) = shape::get_mut(doc, batch) else {
                return None;
            };
            let mut take = |k: &str| match b.get_mut(k) {
                Some(Value::Array(a)) if *index < a.len() => Some(a.remove(*index)),
                _ => None,
            };
            let id = take("ids")?;
            let payload = take("payloads");
            let vector = match b.get_mut("vectors") {
                Some(Value::Array(a)) if *index < a.len() => Some(a.remove(*index)),
                Some(Value::Object(named)) => {
                    let mut v = Map::new();
                    for (name, col) in named.iter_mut() {
                        if let Value::Array(a) = col
                            && *index < a.len()
                        {
                            v.insert(name.clone(), a.remove(*index));
                        }
                    }
                    Some(Value::Object(v))
                }
                _ => None,
            };
            Some(json!({"id": id, "vector": vector, "payload": payload}))
        }
        Holder::SetPayload => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_payloads_in_every_write_form() {
        let up = json!({"points": [{"id": 1, "vector": [1.0], "payload": {"t": "a"}},
                                    {"id": 2, "vector": [1.0]}]});
        assert_eq!(entries(&up, Write::Upsert).len(), 1);
        let cols = json!({"batch": {"ids": [1, 2], "vectors": [[1.0], [2.0]],
                                    "payloads": [{"t": "a"}, {"t": "b"}]}});
        let e = entries(&cols, Write::Upsert);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].id, ChunkId::from(2));
        let batch = json!({"operations": [
            {"upsert": {"points": [{"id": 1, "vector": [1.0], "payload": {"t": "a"}}]}},
            {"set_payload": {"payload": {"t": "b"}, "points": [1]}},
            {"delete": {"points": [3]}}]});
        assert_eq!(entries(&batch, Write::Batch).len(), 2);
        assert_eq!(
            entries(
                &json!({"payload": {"t": "x"}, "points": [1]}),
                Write::SetPayload
            )
            .len(),
            1
        );
    }

    #[test]
    fn columns_are_taken_out_whole() {
        let mut doc = json!({"batch": {"ids": [1, 2], "vectors": {"d": [[1.0], [2.0]]},
                                       "payloads": [{"t": "a"}, {"t": "b"}]}});
        let h = Holder::Columns {
            batch: vec![Step::Key("batch".into())],
            index: 0,
        };
        let p = take_point(&mut doc, &h).expect("taken");
        assert_eq!(
            p,
            json!({"id": 1, "vector": {"d": [1.0]}, "payload": {"t": "a"}})
        );
        assert_eq!(
            doc,
            json!({"batch": {"ids": [2], "vectors": {"d": [[2.0]]}, "payloads": [{"t": "b"}]}})
        );
    }
}
