#!/usr/bin/env python3
"""Turns the public prompt-injection benchmarks into `ragwall eval` JSONL. Reporting only: never
train or tune on these rows (training/ does not read them; thresholds come from the calibration
split of eval/suite.jsonl).

Sources (pass the folders; nothing is downloaded or committed here):
  --piguard DIR  files of leolee99/PIGuard @ 1b5751e (MIT) `datasets/`: NotInject_one.json,
                 NotInject_two.json, NotInject_three.json (339 benign prompts full of trigger
                 words), wildguard.json (971 benign prompts), BIPIA_text.json, BIPIA_code.json
                 (the BIPIA test attacks, by category)
  --bipia DIR    files of microsoft/BIPIA @ 1a2a91d (MIT) `benchmark/`: email/test.jsonl,
                 table/test.jsonl, code/test.jsonl (benign test contexts)

Rows written to --out (one file per benchmark, `kind` = benchmark, `category` = its category):
  notinject.jsonl        label 0, subset one/two/three in `subset`
  wildguard.jsonl        label 0
  bipia_plain.jsonl      label 1: the attack strings alone (how the PIGuard paper scores BIPIA)
  bipia_embedded.jsonl   label 1: every attack planted in BIPIA test contexts (text attacks in
                         e-mails and tables, code attacks in code contexts) at the start, middle
                         and end, and label 0: the same contexts unmodified
"""

import argparse
import json
import os
import random


def write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path}: {len(rows)} rows")


def contexts(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                c = json.loads(line)["context"]
                out.append("\n".join(c) if isinstance(c, list) else c)
    return out


def plant(context, attack, position):
    if position == "start":
        return attack + "\n" + context
    if position == "end":
        return context + "\n" + attack
    lines = context.split("\n")
    i = len(lines) // 2
    return "\n".join(lines[:i] + [attack] + lines[i:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--piguard", required=True)
    ap.add_argument("--bipia", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)

    rows = []
    for subset in ("one", "two", "three"):
        for r in json.load(open(os.path.join(a.piguard, f"NotInject_{subset}.json"), encoding="utf-8")):
            rows.append(dict(text=r["prompt"], label=0, kind="notinject", subset=subset, category=r["category"]))
    write(os.path.join(a.out, "notinject.jsonl"), rows)

    rows = [dict(text=r["prompt"], label=int(r["label"]), kind="wildguard")
            for r in json.load(open(os.path.join(a.piguard, "wildguard.json"), encoding="utf-8"))]
    write(os.path.join(a.out, "wildguard.jsonl"), rows)

    attacks = []
    for name, kind in (("BIPIA_text.json", "text"), ("BIPIA_code.json", "code")):
        for cat, items in json.load(open(os.path.join(a.piguard, name), encoding="utf-8")).items():
            attacks += [(kind, cat, t) for t in items]
    write(os.path.join(a.out, "bipia_plain.jsonl"),
          [dict(text=t, label=1, kind=f"bipia_{k}", category=c) for k, c, t in attacks])

    ctx = {
        "email": contexts(os.path.join(a.bipia, "email", "test.jsonl")),
        "table": contexts(os.path.join(a.bipia, "table", "test.jsonl")),
        "code": contexts(os.path.join(a.bipia, "code", "test.jsonl")),
    }
    rows = []
    for k, c, t in attacks:
        for position in ("start", "middle", "end"):
            carrier = rng.choice(["email", "table"]) if k == "text" else "code"
            rows.append(dict(text=plant(rng.choice(ctx[carrier]), t, position), label=1, kind=f"bipia_{k}",
                             category=c, carrier=carrier, position=position))
    for carrier, items in ctx.items():
        rows += [dict(text=t, label=0, kind=f"bipia_context_{carrier}", carrier=carrier) for t in items]
    write(os.path.join(a.out, "bipia_embedded.jsonl"), rows)


if __name__ == "__main__":
    main()
