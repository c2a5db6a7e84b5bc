#!/usr/bin/env python3
"""Calibrates a model's thresholds on the calibration split of the evaluation suite and writes
them into its manifest (model.toml `threshold` = quarantine, `tag_threshold` = tag).

  ragwall eval --data eval/suite.jsonl --where split=calibration --scores /tmp/cal.jsonl
  python3 eval/calibrate.py --scores /tmp/cal.jsonl --model-dir models/ragwall-e5-injection

Each threshold is the lowest score at which at most the allowed share of the calibration split's
benign rows score at or above it (quarantine: 0.5%, tag: 3%), so it is fitted to benign text
alone; attacks play no part. The verdict score is the model's (rules are evidence and do not
score when a model runs), the maximum over a chunk's windows and hidden texts. Only the test
split may be used to report what these thresholds give.
"""

import argparse
import json
import math
import os
import re


def threshold(benign_scores, max_fpr):
    s = sorted(benign_scores, reverse=True)
    allowed = math.floor(max_fpr * len(s))
    if allowed >= len(s):
        return 0.0
    # flag when score >= t: t just above the (allowed+1)-th highest benign score
    t = s[allowed]
    return min(1.0, math.nextafter(t, 2.0))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scores", required=True, help="JSONL written by `ragwall eval --scores` on the calibration split")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--quarantine-fpr", type=float, default=0.005)
    ap.add_argument("--tag-fpr", type=float, default=0.03)
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.scores, encoding="utf-8") if l.strip()]
    if any(r.get("split") not in (None, "calibration") for r in rows):
        raise SystemExit("calibrate.py: the scores include rows that are not in the calibration split")
    benign = [r["score"] for r in rows if not r["label"]]
    if len(benign) < 200:
        raise SystemExit(f"calibrate.py: {len(benign)} benign rows are too few to calibrate at {a.quarantine_fpr:.1%}")
    q = threshold(benign, a.quarantine_fpr)
    t = min(q, threshold(benign, a.tag_fpr))
    attacks = [r["score"] for r in rows if r["label"]]
    rec = lambda th: sum(s >= th for s in attacks) / max(1, len(attacks))
    print(f"benign rows {len(benign)}, attack rows {len(attacks)}")
    print(f"quarantine threshold {q:.6f} (benign >= it: {sum(s >= q for s in benign)}), attack score recall {rec(q):.4f}")
    print(f"tag threshold        {t:.6f} (benign >= it: {sum(s >= t for s in benign)}), attack score recall {rec(t):.4f}")
    path = os.path.join(a.model_dir, "model.toml")
    text = open(path, encoding="utf-8").read()
    note = (f"calibrated by eval/calibrate.py on eval/suite.jsonl split=calibration "
            f"({len(benign)} benign rows)")
    text = re.sub(r"(?m)^threshold = .*$", f"threshold = {q:.6f}          # quarantine: <= {a.quarantine_fpr:.1%} FPR, {note}", text)
    tag_line = f"tag_threshold = {t:.6f}      # tag: <= {a.tag_fpr:.0%} FPR, same rows"
    if re.search(r"(?m)^tag_threshold = ", text):
        text = re.sub(r"(?m)^tag_threshold = .*$", tag_line, text)
    else:
        text = re.sub(r"(?m)^(threshold = .*)$", lambda m: m.group(1) + "\n" + tag_line, text, count=1)
    open(path, "w", encoding="utf-8").write(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
