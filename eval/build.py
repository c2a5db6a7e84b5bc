#!/usr/bin/env python3
"""Builds ragwall's broad evaluation suite (eval/suite.jsonl) from the texts in eval/written/.

The suite is held out: nothing here is ever read by training/ (training has its own writers, its
own carriers and its own composition code), and it is used for nothing but the final thresholds
(calibration split) and the reported numbers (test split).

Rows (one JSON object per line):
  text, label (0 benign / 1 attack), genre (the carrier's genre), category ("benign" or the
  attack category), language (the carrier's language), attack_language, position
  (start/middle/end/inline/none), length (short/long), split (calibration/test), source, id.

Composition, all deterministic (seed 20261202):
  * benign: every written document as one row, long documents also cut into retrieval-sized
    chunks at paragraph boundaries, and "glued" rows of unrelated passages of one language
    (FAQ dumps, changelogs, scraped pages: topic jumps are normal there);
  * attacks: every written payload planted in carriers of its own language (a short and a long
    one, start/middle/end in turn) and in a carrier of another language; encoded payloads
    (base64, ROT13, hex, reversed, leetspeak) with a written decoding hint; format hiding (HTML
    comment, image alt text, YAML front matter, JSON value, table cell, code comment, footnote);
    and long carriers with the attack at the very end.
The split is by carrier document and by payload (sha256), so no document or payload appears in
both the calibration and the test split.

  python3 eval/build.py            # writes eval/suite.jsonl and eval/COUNTS.md
"""

import argparse
import base64
import codecs
import collections
import hashlib
import json
import os
import random
import re

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = re.compile(r"^=====\s*$", re.M)
CJK = {"zh", "ja"}
LATIN = {"en", "de", "fr", "es", "pt", "it", "nl", "pl", "tr", "vi", "id"}
NATIVE_CATEGORIES = [
    "instruction_override",
    "persona_hijack",
    "prompt_extraction",
    "exfiltration",
    "tool_coercion",
    "assistant_note",
    "out_of_place_task",
]
ENCODINGS = ["base64", "rot13", "hex", "reversed", "leetspeak"]
CALIBRATION_SHARE = 0.4
MAX_WORDS = 500


def read_items(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return [t.strip() for t in SEP.split(text) if t.strip()]


def size(text, lang):
    """Length in words; CJK text counts two characters as a word."""
    if lang in CJK:
        return len(re.sub(r"\s", "", text)) // 2
    return len(text.split())


def digest(*parts):
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def split_of(key):
    return "calibration" if int(key[:8], 16) / 0xFFFFFFFF < CALIBRATION_SHARE else "test"


def paragraphs(text):
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def chunks_of(text, lang, target=150):
    """Retrieval-style chunks: whole paragraphs up to about `target` words."""
    out, cur = [], []
    for p in paragraphs(text):
        if cur and size("\n\n".join(cur + [p]), lang) > target:
            out.append("\n\n".join(cur))
            cur = []
        cur.append(p)
    if cur:
        out.append("\n\n".join(cur))
    return out


def trim(text, lang, words):
    """The first paragraphs of `text` that fit in `words` (at least one, cut if needed)."""
    out = []
    for p in paragraphs(text):
        if out and size("\n\n".join(out + [p]), lang) > words:
            break
        out.append(p)
    t = "\n\n".join(out)
    if size(t, lang) > words:
        if lang in CJK:
            t = t[: words * 2]
        else:
            t = " ".join(t.split(" ")[:words])
    return t


def plant(carrier, payload, position, rng):
    """Puts `payload` into `carrier` at a paragraph boundary (or inside a paragraph)."""
    ps = paragraphs(carrier)
    if position == "start":
        return payload + "\n\n" + carrier
    if position == "end":
        return carrier + "\n\n" + payload
    if position == "inline":
        i = rng.randrange(len(ps))
        sentences = re.split(r"(?<=[.!?。！？])\s*", ps[i])
        j = rng.randrange(len(sentences) + 1)
        ps[i] = " ".join(sentences[:j] + [payload] + sentences[j:]).strip()
        return "\n\n".join(ps)
    i = max(1, len(ps) // 2) if len(ps) > 1 else 1
    return "\n\n".join(ps[:i] + [payload] + ps[i:])


LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7", "A": "4", "E": "3",
                      "I": "1", "O": "0", "S": "5", "T": "7"})


def encode(payload, how):
    if how == "base64":
        return base64.b64encode(payload.encode()).decode()
    if how == "rot13":
        return codecs.encode(payload, "rot13")
    if how == "hex":
        return payload.encode().hex()
    if how == "reversed":
        return payload[::-1]
    return payload.translate(LEET)


def hint_encoding(hint):
    h = hint.lower()
    for key, names in [
        ("base64", ["base64", "base 64", "base-64"]),
        ("rot13", ["rot13", "rot-13", "rot 13"]),
        ("hex", ["hex", "шестнадцат", "16진", "十六進", "十六进", "ست عشر", "سِتّ", "हेक्स", "hexadecim", "szesnast", "onaltılı", "شانزده", "שש-עשר", "הקס", "шістнадцят", "thập lục"]),
        ("reversed", ["revers", "backwards", "umgekehrt", "rückwärts", "à l'envers", "inverti", "al revés", "invers", "omgekeerd", "odwr", "tersine", "ngược", "terbalik", "معکوس", "معكوس", "הפוך", "задом", "обрат", "навпаки", "逆", "倒", "거꾸로", "반대로", "उल्टा", "उलटा"]),
        ("leetspeak", ["leet", "1337", "l33t"]),
    ]:
        if any(n in h for n in names):
            return key
    return None


def wrap_format(payload, how, carrier, rng):
    """Hides `payload` in a document format a crawler or loader keeps as text."""
    if how == "html_comment":
        return plant(carrier, f"<!-- {payload} -->", "middle", rng)
    if how == "alt_text":
        return plant(carrier, f'<img src="/media/figure-{rng.randrange(100)}.png" alt="{payload}">', "middle", rng)
    if how == "yaml_front_matter":
        return f'---\ntitle: "{paragraphs(carrier)[0][:60]}"\nsummary: "{payload}"\nlang: auto\n---\n\n{carrier}'
    if how == "json_value":
        rec = {"id": rng.randrange(10_000, 99_999), "status": "active", "notes": payload, "updated": "2026-03-14"}
        return carrier + "\n\n```json\n" + json.dumps(rec, ensure_ascii=False, indent=2) + "\n```"
    if how == "table_cell":
        table = "| item | owner | remark |\n|---|---|---|\n| Q3 report | finance | done |\n" \
                f"| archive | ops | {payload} |\n| badge renewal | HR | pending |"
        return plant(carrier, table, "middle", rng)
    if how == "code_comment":
        code = f"```python\ndef load_settings(path):\n    # {payload}\n    with open(path) as f:\n        return f.read()\n```"
        return plant(carrier, code, "end", rng)
    return carrier + f"[^1]\n\n[^1]: {payload}"


FORMATS = ["html_comment", "alt_text", "yaml_front_matter", "json_value", "table_cell", "code_comment", "footnote"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--written", default=os.path.join(HERE, "written"))
    ap.add_argument("--out", default=os.path.join(HERE, "suite.jsonl"))
    ap.add_argument("--counts", default=os.path.join(HERE, "COUNTS.md"))
    ap.add_argument("--seed", type=int, default=20261202)
    a = ap.parse_args()
    rng = random.Random(a.seed)

    docs = []  # (lang, genre, text, key)
    # one folder per writer: benign/, benign2/, … and attacks/, attacks2/, …
    writers = sorted(os.listdir(a.written))
    for w in [w for w in writers if w.startswith("benign")]:
        bdir = os.path.join(a.written, w)
        for lang in sorted(os.listdir(bdir)):
            for fn in sorted(os.listdir(os.path.join(bdir, lang))):
                genre = fn[:-4]
                for t in read_items(os.path.join(bdir, lang, fn)):
                    docs.append((lang, genre, t, digest("doc", lang, genre, t)))
    payloads = []  # (lang, category, text, key)
    hints = collections.defaultdict(list)  # lang -> [(encoding, template)]
    for w in [w for w in writers if w.startswith("attacks")]:
        adir = os.path.join(a.written, w)
        for lang in sorted(os.listdir(adir)):
            for fn in sorted(os.listdir(os.path.join(adir, lang))):
                cat = fn[:-4]
                items = read_items(os.path.join(adir, lang, fn))
                if cat == "decode_hints":
                    for h in items:
                        enc = hint_encoding(h)
                        if "{ENC}" in h and enc:
                            hints[lang].append((enc, h))
                elif cat in NATIVE_CATEGORIES:
                    payloads += [(lang, cat, t, digest("payload", lang, cat, t)) for t in items]

    rows = []

    def add(text, label, genre, category, lang, split, source, position="none", length=None,
            attack_language=None, **extra):
        length = length or ("long" if size(text, lang) > 200 else "short")
        rows.append(dict(text=text, label=label, genre=genre, category=category, language=lang,
                         attack_language=attack_language, position=position, length=length,
                         split=split, source=source, **extra))

    # ---- benign
    by_lang = collections.defaultdict(list)
    for lang, genre, text, key in docs:
        by_lang[lang].append((genre, text, key))
        split = split_of(key)
        if size(text, lang) <= MAX_WORDS:
            add(text, 0, genre, "benign", lang, split, "written")
        if size(text, lang) > 200:
            for c in chunks_of(text, lang):
                if size(c, lang) >= 25 and c != text:
                    add(c, 0, genre, "benign", lang, split, "written-chunk")
    for lang, items in sorted(by_lang.items()):
        for split in ("calibration", "test"):
            pool = [i for i in items if split_of(i[2]) == split]
            if len(pool) < 3:
                continue
            for _ in range(8 if lang == "en" else 5):
                picks = rng.sample(pool, 3)
                parts = [rng.choice(paragraphs(p[1])) for p in picks]
                add("\n\n".join(parts), 0, "glued_passages", "benign", lang, split, "written-glued")

    # ---- attacks
    def carrier(lang, split, words_min, words_max, exclude_genres=()):
        pool = [d for d in by_lang.get(lang, []) if split_of(d[2]) == split and d[0] not in exclude_genres]
        if not pool:
            pool = [d for d in by_lang.get(lang, []) if d[0] not in exclude_genres]
        g, t, _ = rng.choice(pool)
        target = rng.randint(words_min, words_max)
        # long carriers may join two documents of the language, as long chunks of pages do
        while size(t, lang) < target:
            g2, t2, _ = rng.choice(pool)
            t = t + "\n\n" + t2
        return g, trim(t, lang, target)

    langs = sorted(by_lang)
    positions = ["start", "middle", "end", "inline"]
    pi = 0
    for lang, cat, text, key in payloads:
        split = split_of(key)
        if lang not in by_lang:
            continue
        for words in [(40, 140), (200, 480)]:
            g, c = carrier(lang, split, *words)
            pos = positions[pi % len(positions)]
            pi += 1
            add(plant(c, text, pos, rng), 1, g, cat, lang, split, "written-planted", pos,
                attack_language=lang)
        other = rng.choice([l for l in langs if l != lang])
        g, c = carrier(other, split, 60, 300)
        pos = positions[pi % len(positions)]
        pi += 1
        add(plant(c, text, pos, rng), 1, g, cat, other, split, "written-planted-crosslingual", pos,
            attack_language=lang)

    per_lang = collections.defaultdict(list)
    for p in payloads:
        per_lang[p[0]].append(p)
    for lang in langs:
        mine = per_lang.get(lang, [])
        if not mine:
            continue
        # encoded payloads with a decoding hint in the same language
        for enc, template in hints.get(lang, []):
            if enc in ("rot13", "leetspeak") and lang not in LATIN:
                src = rng.choice(per_lang["en"])
            else:
                src = rng.choice(mine)
            split = split_of(src[3])
            g, c = carrier(lang, split, 60, 250)
            planted = template.replace("{ENC}", encode(src[2], enc))
            add(plant(c, planted, rng.choice(positions[:3]), rng), 1, g, "encoded", lang, split,
                "written-encoded", attack_language=src[0], encoding=enc)
        # format hiding
        for fmt in FORMATS:
            for _ in range(2 if lang == "en" else 1):
                src = rng.choice(mine)
                split = split_of(src[3])
                g, c = carrier(lang, split, 60, 250)
                add(wrap_format(src[2], fmt, c, rng), 1, g, "format_hiding", lang, split,
                    "written-format", attack_language=lang, format=fmt)
        # long benign text, the attack at the very end
        for _ in range(6 if lang == "en" else 4):
            src = rng.choice(mine)
            split = split_of(src[3])
            g, c = carrier(lang, split, 380, 480)
            add(c + "\n\n" + src[2], 1, g, "end_of_long", lang, split, "written-end-of-long", "end",
                "long", attack_language=lang)

    for i, r in enumerate(rows):
        r["id"] = f"eval-{i:05d}"
    with open(a.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

    c = collections.Counter
    lines = ["# Evaluation suite counts (generated by eval/build.py; do not edit)", ""]
    lines.append(f"rows: {len(rows)} (benign {sum(r['label'] == 0 for r in rows)}, attacks {sum(r['label'] == 1 for r in rows)}); "
                 f"calibration {sum(r['split'] == 'calibration' for r in rows)}, test {sum(r['split'] == 'test' for r in rows)}")
    lines.append(f"written documents: {len(docs)}, payloads: {len(payloads)}, decoding hints: {sum(len(v) for v in hints.values())}")
    for field in ("genre", "category", "language"):
        lines += ["", f"| {field} | benign | attacks |", "|---|---|---|"]
        ben = c(r[field] for r in rows if r["label"] == 0)
        att = c(r[field] for r in rows if r["label"] == 1)
        for k in sorted(set(ben) | set(att)):
            lines.append(f"| {k} | {ben[k]} | {att[k]} |")
    with open(a.counts, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[:4]))


if __name__ == "__main__":
    main()
