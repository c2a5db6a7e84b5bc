#!/usr/bin/env python3
"""Draws the CI regression set (tests/data/regression.jsonl) from the test split of the
evaluation suite: a stratified sample small enough to score in CI, covering every genre, attack
category and language, plus the hidden-channel rows of the previous regression set (tag
characters, zero-width word splitting, homoglyphs), which exercise the normalizer rather than
the model. Deterministic (seed 20261202).

  python3 eval/regression.py            # rewrites tests/data/regression.jsonl
"""

import argparse
import collections
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KEEP_KINDS = ("hidden_unicode", "zero_width", "homoglyph", "benign_hidden_unicode")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=os.path.join(HERE, "suite.jsonl"))
    ap.add_argument("--previous", default=os.path.join(ROOT, "tests", "data", "regression.jsonl"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "regression.jsonl"))
    ap.add_argument("--per-genre", type=int, default=30, help="benign rows per genre")
    ap.add_argument("--per-category", type=int, default=40, help="attack rows per category")
    ap.add_argument("--seed", type=int, default=20261202)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    test = [json.loads(l) for l in open(a.suite, encoding="utf-8")]
    test = [r for r in test if r["split"] == "test"]
    chosen = []
    for label, field, n in ((0, "genre", a.per_genre), (1, "category", a.per_category)):
        groups = collections.defaultdict(list)
        for r in test:
            if r["label"] == label:
                groups[r[field]].append(r)
        for g, rows in sorted(groups.items()):
            # round-robin over languages so every language is in every group where it can be
            by_lang = collections.defaultdict(list)
            for r in rows:
                by_lang[r["language"]].append(r)
            for v in by_lang.values():
                rng.shuffle(v)
            langs = sorted(by_lang)
            rng.shuffle(langs)
            picked = []
            while len(picked) < n and any(by_lang.values()):
                for l in langs:
                    if by_lang[l] and len(picked) < n:
                        picked.append(by_lang[l].pop())
            chosen += picked
    keep = []
    if os.path.exists(a.previous):
        for l in open(a.previous, encoding="utf-8"):
            r = json.loads(l)
            if r.get("kind") in KEEP_KINDS:
                keep.append({"text": r["text"], "label": r["label"], "kind": r["kind"], "source": r.get("source")})
    rows = [{k: r[k] for k in ("text", "label", "genre", "category", "language", "id")} | {"kind": "suite"} for r in chosen]
    rows += keep
    with open(a.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{a.out}: {len(rows)} rows ({len(chosen)} from the suite's test split, {len(keep)} hidden-channel rows kept)")


if __name__ == "__main__":
    main()
