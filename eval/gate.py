#!/usr/bin/env python3
"""Writes the CI detection gate (tests/data/regression.gate.toml) from a measurement of the
regression set, so that every group has a floor:

  ragwall eval --data tests/data/regression.jsonl --by kind,genre,category,language --json > /tmp/m.json
  python3 eval/gate.py --report /tmp/m.json --model "ragwall-e5-injection 2.0.0"

Every group of every field gets floors on recall and tagged recall (attacks) or ceilings on the
quarantined and tagged false-positive rates (benign),
set a margin below (above) what was measured: the larger of 3 points and one binomial standard
error of the group (a recall floor never below half the measurement), so a group of 20 rows does not fail on one row while a real regression
(model, normalizer, rules, policy) still does. Scores are deterministic on one machine; the
margin also absorbs int8 differences between CPUs. Overall ROC-AUC gets a floor too.
"""

import argparse
import datetime
import json
import math


def margin(p, n):
    return max(0.03, math.sqrt(max(p * (1 - p), 0.02) / max(n, 1)))


def floor(p, n):
    # never below half the measurement: a floor of 0 would be a check that cannot fail
    return max(p / 2, math.floor((p - margin(p, n)) * 1000) / 1000)


def ceil(p, n):
    return min(1.0, math.ceil((p + margin(p, n)) * 1000) / 1000)


def bounds(m):
    """Bound lines; a bound that could never fail (a floor of 0, a ceiling of 1) is written as a
    comment saying so instead."""
    out = []
    if m.get("positives") and m.get("recall") is not None:
        f = floor(m["recall"], m["positives"])
        line = f"min_recall = {f:.3f}   # measured {m['recall']:.3f} of {m['positives']}"
        out.append(line if f > 0 else f"# no recall floor: measured {m['recall']:.3f} of {m['positives']}")
    if m.get("positives") and m.get("tag_recall") is not None:
        f = floor(m["tag_recall"], m["positives"])
        if f > 0:
            out.append(f"min_tag_recall = {f:.3f}   # measured {m['tag_recall']:.3f}")
    if m.get("negatives") and m.get("fpr") is not None:
        c = ceil(m["fpr"], m["negatives"])
        line = f"max_fpr = {c:.3f}      # measured {m['fpr']:.3f} of {m['negatives']}"
        out.append(line if c < 1 else f"# no FPR ceiling: measured {m['fpr']:.3f} of {m['negatives']}")
    if m.get("negatives") and m.get("tag_fpr") is not None:
        c = ceil(m["tag_fpr"], m["negatives"])
        if c < 1:
            out.append(f"max_tag_fpr = {c:.3f}  # measured {m['tag_fpr']:.3f}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", required=True, help="ragwall eval --json output on the regression set")
    ap.add_argument("--model", required=True, help="model name and version, for the header")
    ap.add_argument("--out", default="tests/data/regression.gate.toml")
    a = ap.parse_args()
    r = json.load(open(a.report, encoding="utf-8"))
    o = r["overall"]
    lines = [
        "# Detection floors for tests/data/regression.jsonl, checked in CI by",
        "#   ragwall eval --data tests/data/regression.jsonl --gate tests/data/regression.gate.toml",
        f"# Written by eval/gate.py on {datetime.date.today()} from a measurement with {a.model}",
        f"# ({r['detector']}), policy {r['policy_version']}, quarantine threshold {r.get('quarantine_threshold')},",
        f"# tag threshold {r.get('tag_threshold')}. Every group has a bound a margin away from the",
        "# measurement (max of 3 points and one binomial standard error; recall floors at least half",
        "# the measurement).",
        "",
        "[overall]",
        *bounds(o),
    ]
    if o.get("roc_auc") is not None:
        lines.append(f"min_roc_auc = {max(0.0, o['roc_auc'] - 0.02):.3f}  # measured {o['roc_auc']:.3f}")
    for field, values in sorted(r["groups"].items()):
        for value, m in sorted(values.items()):
            b = bounds(m)
            if not b:
                continue
            lines += ["", f'[groups.{field}."{value}"]', *b]
    open(a.out, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
