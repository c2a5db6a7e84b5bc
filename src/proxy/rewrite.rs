//! Applying decisions to a response in Qdrant's own shapes.
//!
//! - quarantine: the point is removed from the array holding it; the other points keep their
//!   order, scores and every other field, and groups and batches keep their structure (a group
//!   may end up with no hits). A quarantined point that is not in an array (a group's `lookup`)
//!   becomes `null`; when it is the whole `result` (`GET /collections/{c}/points/{id}`) the
//!   caller answers 404 as Qdrant does for a missing point.
//! - tag: the payload gets a `ragwall` object `{action, score, reasons, model, policy, stamped}`
//!   (replacing any stamp there: a tag is information for the client, not a stamp).
//! - wrap (when enabled): each text field of a passing point is replaced by its envelope
//!   (`wrap.rs`), built from the sanitized text; one nonce per response, sent in
//!   `x-ragwall-wrap-nonce`.
//!
//! - groups and facet values ([`prune_loose`]): a group whose id or a facet hit whose value was
//!   quarantined is removed, and so is a group whose hits were all quarantined (an empty group
//!   would still hand its id, a payload value, to the client).
//!
//! Block is not handled here: it refuses the whole response before any rewriting.

use serde_json::{Value, json};

use crate::policy::Action;
use crate::proxy::payload::{self, Step};
use crate::proxy::scan::PointDecision;
use crate::proxy::shape::{self, LooseKind, LooseRef, PointRef};
use crate::stamp::PAYLOAD_KEY;
use crate::wrap::{WrapItem, WrapMode, wrap};

/// How to wrap text fields.
#[derive(Debug, Clone)]
pub struct WrapWith {
    pub mode: WrapMode,
    pub marker: char,
    pub nonce: String,
}

/// What the rewrite needs besides the decisions.
#[derive(Debug, Clone)]
pub struct Rewrite<'a> {
    pub detector: &'a str,
    pub policy_version: &'a str,
    pub collection: Option<&'a str>,
    pub wrap: Option<WrapWith>,
}

/// What changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub quarantined: usize,
    pub tagged: usize,
    pub wrapped: usize,
    /// The response's `result` itself was a quarantined point.
    pub result_removed: bool,
    /// Groups removed: their id was quarantined, or every hit was.
    pub groups_removed: usize,
    /// Facet hits removed: their value was quarantined.
    pub values_removed: usize,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        self.quarantined + self.tagged + self.wrapped + self.groups_removed + self.values_removed
            > 0
    }
}

/// Removes the groups and facet hits (`loose`, with one action each, same order) that must not
/// reach the client. Runs after [`apply`], which may have emptied groups.
pub fn prune_loose(doc: &mut Value, loose: &[LooseRef], actions: &[Action], out: &mut Outcome) {
    for (l, a) in loose.iter().zip(actions).rev() {
        let flagged = *a >= Action::Quarantine;
        let emptied = l.kind == LooseKind::Group
            && l.had_hits
            && matches!(
                shape::get(doc, &l.steps).and_then(|g| g.get("hits")),
                Some(Value::Array(h)) if h.is_empty()
            );
        if !(flagged || emptied) {
            continue;
        }
        let Some((Step::Index(i), parent)) = l.steps.split_last() else {
            continue;
        };
        if let Some(Value::Array(arr)) = shape::get_mut(doc, parent)
            && *i < arr.len()
        {
            arr.remove(*i);
            match l.kind {
                LooseKind::Group => out.groups_removed += 1,
                LooseKind::FacetValue => out.values_removed += 1,
            }
        }
    }
}

/// Whether any decision changes the response (so an untouched response can be passed on byte
/// for byte).
pub fn needs_rewrite(decisions: &[PointDecision], wrapping: bool) -> bool {
    decisions.iter().any(|d| {
        matches!(d.action, Action::Tag | Action::Quarantine)
            || (wrapping && d.action.passes() && d.sanitized.iter().any(Option::is_some))
    })
}

/// Applies `decisions` (one per `refs` entry, same order) to `doc`.
pub fn apply(
    doc: &mut Value,
    refs: &[PointRef],
    decisions: &[PointDecision],
    rw: &Rewrite<'_>,
) -> Outcome {
    let mut out = Outcome::default();
    // Reverse document order: removing a later array element never moves an earlier one, and
    // points never contain points.
    for (r, d) in refs.iter().zip(decisions).rev() {
        match d.action {
            Action::Quarantine | Action::Block => {
                out.quarantined += 1;
                remove(doc, r, &mut out);
            }
            Action::Tag | Action::Allow => {
                let Some(Value::Object(point)) = shape::get_mut(doc, &r.steps) else {
                    continue;
                };
                let Some(Value::Object(payload)) = point.get_mut("payload") else {
                    // A payload that is not an object (no Qdrant sends one) cannot carry a tag
                    // or an envelope: a decision that needs either removes the point instead.
                    if d.action == Action::Tag || (rw.wrap.is_some() && d.action.passes()) {
                        out.quarantined += 1;
                        remove(doc, r, &mut out);
                    }
                    continue;
                };
                if let Some(w) = &rw.wrap {
                    let id = d.id.to_string();
                    let mut any = false;
                    for (f, text) in d.fields.iter().zip(&d.sanitized) {
                        let Some(text) = text else { continue };
                        let item = WrapItem {
                            id: id.clone(),
                            collection: rw.collection,
                            source: Some(&f.path),
                            score: d.score,
                            action: d.action,
                            text,
                        };
                        let wrapped = wrap(&[item], w.mode, w.marker, &w.nonce);
                        if let (Some(slot), Some(block)) =
                            (payload::get_mut(payload, &f.steps), wrapped.blocks.first())
                        {
                            *slot = Value::String(block.clone());
                            any = true;
                        }
                    }
                    out.wrapped += usize::from(any);
                }
                if d.action == Action::Tag {
                    out.tagged += 1;
                    payload.insert(
                        PAYLOAD_KEY.to_owned(),
                        json!({
                            "action": d.action,
                            "score": (f64::from(d.score) * 1e6).round() / 1e6,
                            "reasons": d.reasons,
                            "model": rw.detector,
                            "policy": rw.policy_version,
                            "stamped": d.stamped,
                        }),
                    );
                }
            }
        }
    }
    out
}

fn remove(doc: &mut Value, r: &PointRef, out: &mut Outcome) {
    let Some((last, parent)) = r.steps.split_last() else {
        *doc = Value::Null;
        out.result_removed = true;
        return;
    };
    match (shape::get_mut(doc, parent), last) {
        (Some(Value::Array(a)), Step::Index(i)) if *i < a.len() => {
            a.remove(*i);
        }
        (Some(Value::Object(m)), Step::Key(k)) => {
            if parent.is_empty() && k == "result" {
                out.result_removed = true;
            }
            if let Some(slot) = m.get_mut(k) {
                *slot = Value::Null;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::ChunkId;
    use crate::proxy::shape::find_points;

    fn decision(id: u64, action: Action) -> PointDecision {
        PointDecision {
            id: ChunkId::from(id),
            action,
            score: 0.5,
            reasons: vec!["score".into()],
            stamped: false,
            stamp_mismatch: None,
            fields: Vec::new(),
            sanitized: Vec::new(),
            sha256: String::new(),
        }
    }

    fn rw() -> Rewrite<'static> {
        Rewrite {
            detector: "d",
            policy_version: "p",
            collection: Some("docs"),
            wrap: None,
        }
    }

    #[test]
    fn quarantine_removes_and_keeps_the_rest_untouched() {
        let mut doc = json!({"result": {"groups": [
            {"id": "a", "hits": [{"id": 1, "score": 0.9, "payload": {"t": "x"}},
                                  {"id": 2, "score": 0.8, "payload": {"t": "y"}}]},
            {"id": "b", "hits": [{"id": 3, "score": 0.7, "payload": {"t": "z"}}]}]},
            "status": "ok", "time": 0.1});
        let refs = find_points(&doc);
        let ds = [
            decision(1, Action::Allow),
            decision(2, Action::Quarantine),
            decision(3, Action::Quarantine),
        ];
        let out = apply(&mut doc, &refs, &ds, &rw());
        assert_eq!(out.quarantined, 2);
        assert_eq!(
            doc,
            json!({"result": {"groups": [
                {"id": "a", "hits": [{"id": 1, "score": 0.9, "payload": {"t": "x"}}]},
                {"id": "b", "hits": []}]}, "status": "ok", "time": 0.1})
        );
    }

    #[test]
    fn emptied_and_flagged_groups_and_flagged_facet_values_are_removed() {
        let mut doc = json!({"result": {"groups": [
            {"id": "a", "hits": [{"id": 1, "payload": {"t": "x"}}]},
            {"id": "b", "hits": [{"id": 2, "payload": {"t": "y"}}]},
            {"id": "c", "hits": [{"id": 3, "payload": {"t": "z"}}]},
            {"id": "d", "hits": []}]}});
        let refs = find_points(&doc);
        let loose = shape::find_loose(&doc);
        let ds = [
            decision(1, Action::Allow),
            decision(2, Action::Quarantine),
            decision(3, Action::Allow),
        ];
        let mut out = apply(&mut doc, &refs, &ds, &rw());
        let actions = [
            Action::Allow,
            Action::Allow,
            Action::Quarantine,
            Action::Allow,
        ];
        prune_loose(&mut doc, &loose, &actions, &mut out);
        assert_eq!((out.groups_removed, out.quarantined), (2, 1));
        // "d" had no hits upstream (with_payload: false hits are not points): it stays.
        assert_eq!(
            doc,
            json!({"result": {"groups": [
                {"id": "a", "hits": [{"id": 1, "payload": {"t": "x"}}]},
                {"id": "d", "hits": []}]}})
        );
        let mut f =
            json!({"result": {"hits": [{"value": "a", "count": 2}, {"value": "b", "count": 1}]}});
        let loose = shape::find_loose(&f);
        let mut out = Outcome::default();
        prune_loose(&mut f, &loose, &[Action::Quarantine, Action::Tag], &mut out);
        assert_eq!(out.values_removed, 1);
        assert_eq!(f, json!({"result": {"hits": [{"value": "b", "count": 1}]}}));
    }

    #[test]
    fn tag_adds_a_ragwall_object_and_a_single_point_result_is_removed() {
        let mut doc = json!({"result": [{"id": 1, "payload": {"t": "x"}}]});
        let refs = find_points(&doc);
        apply(&mut doc, &refs, &[decision(1, Action::Tag)], &rw());
        assert_eq!(doc["result"][0]["payload"]["ragwall"]["action"], "tag");
        assert_eq!(doc["result"][0]["payload"]["ragwall"]["model"], "d");
        let mut doc = json!({"result": {"id": 1, "payload": {"t": "x"}}, "status": "ok"});
        let refs = find_points(&doc);
        let out = apply(&mut doc, &refs, &[decision(1, Action::Quarantine)], &rw());
        assert!(out.result_removed);
        assert_eq!(doc["result"], Value::Null);
    }
}
