//! Finding point payloads in a Qdrant response by its JSON shape, not its path.
//!
//! Qdrant returns points in many envelopes: `result: [...]` (search, recommend, discover),
//! `result: {points: [...]}` (query, scroll), `result: [[...]]` / `result: [{points}]` (batches),
//! `result: {groups: [{hits: [...], lookup: {...}}]}` (groups), `result: {...}` (one point by
//! id). Rather than keep a list of endpoints, which a future Qdrant version would outgrow, the
//! proxy walks the whole response and treats as a point **every JSON object with an `id` that is
//! an integer or a string and a `payload` that is an object**, wherever it sits. A point's
//! payload is user data and is never searched for further points.
//!
//! Security argument: whatever path, method or encoding produced a response, a point payload in
//! it has this shape (that is how every Qdrant client reads it), so it is found and scanned.
//! Points without a payload (`with_payload: false`) carry no text and are left alone.

use serde_json::{Map, Value};

use crate::proxy::payload::Step;

/// Where a point sits in the response.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRef {
    /// Steps from the document root to the point object.
    pub steps: Vec<Step>,
    /// Whether the point is an element of an array (then removing it keeps the shape).
    pub in_array: bool,
}

/// Whether `v` is a point carrying a payload.
pub fn is_point(m: &Map<String, Value>) -> bool {
    let id_ok = match m.get("id") {
        Some(Value::Number(n)) => n.is_u64() || n.is_i64(),
        Some(Value::String(_)) => true,
        _ => false,
    };
    id_ok && matches!(m.get("payload"), Some(Value::Object(_)))
}

/// Every point with a payload in `doc`, in document order.
pub fn find_points(doc: &Value) -> Vec<PointRef> {
    let mut out = Vec::new();
    walk(doc, &mut Vec::new(), false, &mut out);
    out
}

fn walk(v: &Value, steps: &mut Vec<Step>, in_array: bool, out: &mut Vec<PointRef>) {
    match v {
        Value::Object(m) if is_point(m) => out.push(PointRef {
            steps: steps.clone(),
            in_array,
        }),
        Value::Object(m) => {
            for (k, x) in m {
                steps.push(Step::Key(k.clone()));
                walk(x, steps, false, out);
                steps.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                steps.push(Step::Index(i));
                walk(x, steps, true, out);
                steps.pop();
            }
        }
        _ => {}
    }
}

/// The value at `steps` from the root.
pub fn get<'a>(doc: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(doc, |v, s| match (s, v) {
        (Step::Key(k), Value::Object(m)) => m.get(k),
        (Step::Index(i), Value::Array(a)) => a.get(*i),
        _ => None,
    })
}

/// The value at `steps` from the root, mutably.
pub fn get_mut<'a>(doc: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    steps.iter().try_fold(doc, |v, s| match (s, v) {
        (Step::Key(k), Value::Object(m)) => m.get_mut(k),
        (Step::Index(i), Value::Array(a)) => a.get_mut(*i),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(id: i64) -> Value {
        json!({"id": id, "score": 0.5, "payload": {"text": "t"}})
    }

    #[test]
    fn finds_points_in_every_envelope() {
        let docs = [
            json!({"result": [p(1), p(2)]}),
            json!({"result": {"points": [p(1), p(2)]}}),
            json!({"result": [[p(1)], [p(2)]]}),
            json!({"result": [{"points": [p(1)]}, {"points": [p(2)]}]}),
            json!({"result": {"groups": [{"id": "g", "hits": [p(1)]}, {"id": 7, "hits": [p(2)]}]}}),
            json!({"result": {"next": {"deep": [{"x": [p(1), p(2)]}]}}}),
        ];
        for d in &docs {
            let found = find_points(d);
            assert_eq!(found.len(), 2, "{d}");
            assert!(found.iter().all(|r| r.in_array));
        }
        let single = json!({"result": {"id": "6a1b", "payload": {"t": "x"}}});
        let found = find_points(&single);
        assert_eq!(found.len(), 1);
        assert!(!found[0].in_array);
        assert_eq!(found[0].steps, [Step::Key("result".into())]);
    }

    #[test]
    fn ignores_what_is_not_a_point_with_payload() {
        let docs = [
            json!({"result": [{"id": 1, "score": 1.0}]}),
            json!({"result": [{"id": 1, "payload": null}]}),
            json!({"result": {"collections": [{"name": "docs"}]}}),
            json!({"result": {"pairs": [{"a": 1, "b": 3, "score": 0.9}]}}),
            json!({"result": [{"id": 1.5, "payload": {}}]}),
            json!({"status": {"error": "Not found"}, "time": 0.1}),
        ];
        for d in &docs {
            assert!(find_points(d).is_empty(), "{d}");
        }
        // A payload that looks like it holds points is user data, not more points.
        let d = json!({"result": [{"id": 1, "payload": {"inner": {"id": 2, "payload": {}}}}]});
        assert_eq!(find_points(&d).len(), 1);
    }
}
