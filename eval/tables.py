#!/usr/bin/env python3
"""Markdown tables from `ragwall eval --json` (for the README and issue notes):

  ragwall eval --data eval/suite.jsonl --where split=test --by genre,category,language --json > m.json
  python3 eval/tables.py m.json

Benign groups show the share quarantined (or blocked) and the share tagged or worse; attack
groups the share quarantined (recall) and the share tagged or worse.
"""

import json
import sys


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def main():
    r = json.load(open(sys.argv[1], encoding="utf-8"))
    o = r["overall"]
    print(f"detector `{r['detector']}`, policy `{r['policy_version']}`, quarantine threshold "
          f"{r.get('quarantine_threshold')}, tag threshold {r.get('tag_threshold')}\n")
    print("| group | benign n | benign quarantined | benign tagged+ | attacks n | attacks quarantined | attacks tagged+ | ROC-AUC |")
    print("|---|---|---|---|---|---|---|---|")

    def row(name, m):
        auc = "-" if m.get("roc_auc") is None else f"{m['roc_auc']:.3f}"
        print(f"| {name} | {m['negatives']} | {pct(m.get('fpr'))} | {pct(m.get('tag_fpr'))} | "
              f"{m['positives']} | {pct(m.get('recall'))} | {pct(m.get('tag_recall'))} | {auc} |")

    row("**overall**", o)
    for field in ("genre", "category", "language", "kind"):
        for value, m in sorted(r["groups"].get(field, {}).items()):
            row(f"{field}: {value}", m)


if __name__ == "__main__":
    main()
