//! Detection metrics for labelled data: the numbers behind `ragwall eval` and the CI gate.
//!
//! Pure functions over `(score, flagged, label)` triples. "Flagged" is the firewall's real
//! decision (quarantine or block), so precision/recall/FPR describe what users get, findings and
//! rules included; ROC-AUC and the 1%-FPR operating point describe the score alone and are what
//! the policy's `calibrated` threshold is taken from.

use serde::Serialize;

/// One labelled, scored example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f32,
    pub flagged: bool,
    /// Tagged or worse: what an operator sees annotated, even when the chunk still passes.
    pub tagged: bool,
    pub label: bool,
}

/// Metrics of a set of examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub n: usize,
    pub positives: usize,
    pub negatives: usize,
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    pub fn_: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub fpr: Option<f64>,
    /// Share of positives tagged or worse.
    pub tag_recall: Option<f64>,
    /// Share of negatives tagged or worse.
    pub tag_fpr: Option<f64>,
    pub accuracy: f64,
    pub roc_auc: Option<f64>,
    /// Recall when the score threshold is set for at most 1% false positives.
    pub recall_at_1pct_fpr: Option<f64>,
    /// Lowest score threshold with at most 1% false positives.
    pub threshold_at_1pct_fpr: Option<f32>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Computes every metric for `items`.
pub fn metrics(items: &[Scored]) -> Metrics {
    let (mut tp, mut fp, mut tn, mut fn_) = (0, 0, 0, 0);
    for it in items {
        match (it.flagged, it.label) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, false) => tn += 1,
            (false, true) => fn_ += 1,
        }
    }
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let (threshold, recall_at) = operating_point(items, 0.01);
    let tagged_pos = items.iter().filter(|i| i.label && i.tagged).count();
    let tagged_neg = items.iter().filter(|i| !i.label && i.tagged).count();
    Metrics {
        n: items.len(),
        positives: tp + fn_,
        negatives: fp + tn,
        tp,
        fp,
        tn,
        fn_,
        precision,
        recall,
        f1,
        fpr: ratio(fp, fp + tn),
        tag_recall: ratio(tagged_pos, tp + fn_),
        tag_fpr: ratio(tagged_neg, fp + tn),
        accuracy: ratio(tp + tn, items.len()).unwrap_or(0.0),
        roc_auc: roc_auc(items),
        recall_at_1pct_fpr: recall_at,
        threshold_at_1pct_fpr: threshold,
    }
}

/// ROC-AUC by the rank-sum (Mann–Whitney) formula, ties counted half.
pub fn roc_auc(items: &[Scored]) -> Option<f64> {
    let mut v: Vec<(f32, bool)> = items.iter().map(|i| (i.score, i.label)).collect();
    let pos = v.iter().filter(|x| x.1).count();
    let neg = v.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0f64;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * v[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos as f64 * neg as f64))
}

/// The lowest threshold `t` (flag when `score >= t`) whose false-positive rate is at most
/// `max_fpr`, and the recall it gives.
pub fn operating_point(items: &[Scored], max_fpr: f64) -> (Option<f32>, Option<f64>) {
    let mut neg: Vec<f32> = items.iter().filter(|i| !i.label).map(|i| i.score).collect();
    let pos: Vec<f32> = items.iter().filter(|i| i.label).map(|i| i.score).collect();
    if neg.is_empty() || pos.is_empty() {
        return (None, None);
    }
    neg.sort_by(|a, b| b.total_cmp(a));
    let allowed = (max_fpr * neg.len() as f64).floor() as usize;
    // Flagging `score >= t` must flag at most `allowed` negatives: t just above the
    // (allowed+1)-th highest negative score.
    let t = match neg.get(allowed) {
        Some(&s) => next_up(s),
        None => neg.last().copied().unwrap_or(0.0),
    };
    let recall = pos.iter().filter(|&&s| s >= t).count() as f64 / pos.len() as f64;
    (Some(t), Some(recall))
}

fn next_up(x: f32) -> f32 {
    if x >= 1.0 {
        return 1.0;
    }
    f32::from_bits(if x >= 0.0 {
        x.to_bits() + 1
    } else {
        x.to_bits() - 1
    })
    .max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(score: f32, label: bool) -> Scored {
        Scored {
            score,
            flagged: score >= 0.5,
            tagged: score >= 0.3,
            label,
        }
    }

    #[test]
    fn confusion_and_rates() {
        let items = [
            s(0.9, true),
            s(0.8, true),
            s(0.2, true),
            s(0.6, false),
            s(0.1, false),
            s(0.0, false),
        ];
        let m = metrics(&items);
        assert_eq!((m.tp, m.fp, m.tn, m.fn_), (2, 1, 2, 1));
        assert!((m.precision.unwrap_or(0.0) - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.recall.unwrap_or(0.0) - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.fpr.unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-9);
        // Tagged at 0.3: positives 0.9, 0.8 of three; negatives 0.6 of three.
        assert!((m.tag_recall.unwrap_or(0.0) - 2.0 / 3.0).abs() < 1e-9);
        assert!((m.tag_fpr.unwrap_or(0.0) - 1.0 / 3.0).abs() < 1e-9);
        // AUC: pairs (pos>neg): 0.9>all3, 0.8>all3, 0.2>0.1,0.0 → 8 of 9.
        assert!((m.roc_auc.unwrap_or(0.0) - 8.0 / 9.0).abs() < 1e-9);
    }

    #[test]
    fn one_percent_operating_point() {
        // 200 negatives at 0.0..0.199, two of them high; positives at 0.5 and 0.95.
        let mut items: Vec<Scored> = (0..198).map(|i| s(i as f32 / 1000.0, false)).collect();
        items.push(s(0.7, false));
        items.push(s(0.9, false));
        items.push(s(0.95, true));
        items.push(s(0.5, true));
        let (t, r) = operating_point(&items, 0.01);
        let t = t.unwrap_or(0.0);
        // At most 2 of 200 negatives may be flagged: the threshold sits just above the third
        // highest negative (0.197), so both positives are caught.
        assert!(t > 0.197 && t < 0.2, "{t}");
        assert_eq!(r, Some(1.0));
        assert!(metrics(&[s(0.5, true)]).roc_auc.is_none());
    }
}
