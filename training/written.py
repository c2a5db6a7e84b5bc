"""Training rows from the texts in training/data/written/ (written for training by writers who
never wrote evaluation rows; see training/data/written/README.md).

What the model must learn from them, and the old data did not teach:
  * ordinary retrieved documents of every genre and of 20 languages are benign, however many
    imperatives, system prompts in code, quoted attacks or topic jumps they contain;
  * an instruction aimed at the assistant reading the document is an attack in any language,
    in any genre, at any position, phrased politely or not, encoded or hidden in markup.

Splits are by document and by payload (sha256 of the text): 90% train, 10% validation. Nothing
here goes into a test split: the held-out test is eval/suite.jsonl, built from other writers'
texts by other code.
"""

import base64
import codecs
import collections
import hashlib
import os
import re

SEP = re.compile(r"^=====\s*$", re.M)
LATIN = {"en", "de", "fr", "es", "pt", "it", "nl", "pl", "tr", "vi", "id"}
CATEGORIES = ["instruction_override", "persona_hijack", "prompt_extraction", "exfiltration",
              "tool_coercion", "assistant_note", "out_of_place_task"]


def _items(path):
    with open(path, encoding="utf-8") as f:
        return [t.strip() for t in SEP.split(f.read()) if t.strip()]


def _split(text, val=0.1):
    h = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val else "train"


def _paragraphs(text):
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def load(root):
    """Documents and payloads: ({lang: [(genre, text, split)]}, [(lang, cat, text, split)], hints)."""
    docs = collections.defaultdict(list)
    payloads, hints = [], collections.defaultdict(list)
    for bdir in _writer_dirs(root, "benign"):
        for lang in sorted(os.listdir(bdir)):
            for fn in sorted(f for f in os.listdir(os.path.join(bdir, lang)) if f.endswith(".txt")):
                for t in _items(os.path.join(bdir, lang, fn)):
                    docs[lang].append((fn[:-4], t, _split(t)))
    for adir in _writer_dirs(root, "attacks"):
        for lang in sorted(os.listdir(adir)):
            for fn in sorted(f for f in os.listdir(os.path.join(adir, lang)) if f.endswith(".txt")):
                cat = fn[:-4]
                for t in _items(os.path.join(adir, lang, fn)):
                    if cat == "decode_hints":
                        if "{ENC}" in t:
                            hints[lang].append(t)
                    elif cat in CATEGORIES:
                        payloads.append((lang, cat, t, _split(t)))
    return docs, payloads, hints


def _writer_dirs(root, kind):
    """One folder per writer: `benign/`, `benign2/`, … (the README says who wrote which)."""
    if not os.path.isdir(root):
        return []
    names = [n for n in os.listdir(root) if re.fullmatch(kind + r"\d*", n)]
    return [os.path.join(root, n) for n in sorted(names) if os.path.isdir(os.path.join(root, n))]


_LEET = str.maketrans("aeiostAEIOST", "4310574310$7")


def _encode(text, hint):
    h = hint.lower()
    if "base" in h and "64" in h:
        return base64.b64encode(text.encode()).decode()
    if "rot" in h and "13" in h:
        return codecs.encode(text, "rot13")
    if "hex" in h:
        return text.encode().hex()
    if "leet" in h or "1337" in h:
        return text.translate(_LEET)
    return text[::-1]


def _hide(payload, carrier, rng):
    """Markup a loader keeps as text (different wrappers from the evaluation suite's)."""
    how = rng.randrange(8)
    if how == 0:
        return f"{carrier}\n<div style=\"display:none\">{payload}</div>"
    if how == 1:
        return f"{carrier}\n![{payload}](https://cdn.example/img/{rng.randrange(999)}.jpg)"
    if how == 2:
        return f"---\ndescription: >\n  {payload}\nauthor: staff\n---\n{carrier}"
    if how == 3:
        return f'{carrier}\n{{"comment": "{payload}", "rating": {rng.randint(1, 5)}}}'
    if how == 4:
        return f"{carrier}\n\n| field | value |\n|---|---|\n| remark | {payload} |"
    if how == 5:
        return f"{carrier}\n\n// {payload}\nconst retries = {rng.randint(1, 9)};"
    if how == 6:
        return f"{carrier}\n\n<!--\n{payload}\n-->"
    return f"{carrier}\n\n* {payload}"


def add_rows(b, root, rng, max_tok):
    """Adds the written material to `b` (a build_data.Builder): benign crops and glued passages,
    planted, encoded and hidden attacks, and the payloads alone. Returns counts per kind."""
    docs, payloads, hints = load(root)
    counts = collections.Counter()

    def add(split, text, label, source, kind, group):
        b.add(split, text, label, source, kind, group)
        counts[f"{kind}/{label}"] += 1

    langs = sorted(docs)
    pool = {s: [(lang, g, t) for lang in langs for (g, t, sp) in docs[lang] if sp == s] for s in ("train", "val")}
    # ---- benign: several windows per document, of the lengths retrieval chunks have
    for lang in langs:
        for genre, text, split in docs[lang]:
            for lim in (48, 96, max_tok, max_tok):
                add(split, b.crop_window(text, lim, rng), 0, f"written_{lang}", "benign_written", f"w:{genre}")
    # ---- benign: unrelated passages glued together (FAQ dumps, scraped pages, changelogs)
    # about four glued rows per document (2,500 for the first writers' 588 documents)
    for split, n in (("train", 4 * len(pool["train"])), ("val", 4 * len(pool["val"]))):
        ps = pool[split]
        for _ in range(n):
            k = rng.randint(2, 4)
            same = rng.random() < 0.7
            first = rng.choice(ps)
            picks = [first] + [rng.choice([p for p in ps if p[0] == first[0]] if same else ps) for _ in range(k - 1)]
            parts = [b.crop_window(rng.choice(_paragraphs(p[2])), rng.randint(20, 60), rng) for p in picks]
            add(split, b.crop_head("\n\n".join(parts), max_tok), 0, f"written_{first[0]}", "benign_glued", "w:glued")
    # ---- attacks
    by_lang = collections.defaultdict(list)
    for lang, g, t in pool["train"] + pool["val"]:
        by_lang[lang].append((g, t))

    def carrier(lang, split):
        cands = [(g, t) for (l, g, t) in pool[split] if l == lang] or [(g, t) for (l, g, t) in pool[split]]
        return rng.choice(cands)

    foreign_carriers = {s: [c for c in b.carriers if c["split"] == s] for s in ("train", "val")}
    for lang, cat, text, split in payloads:
        # alone (as a user would paste it, or a chunk that is only the injection)
        add(split, b.crop_head(text, max_tok), 1, f"written_attack_{lang}", "written_attack", f"wa:{cat}")
        # planted in written documents of its language (and one other), at varied positions
        for i in range(5):
            if i < 3:
                g, c = carrier(lang, split)
            elif i == 3:
                g, c = carrier(rng.choice(langs), split)
            else:
                fc = foreign_carriers[split] or foreign_carriers["train"]
                g, c = "doc", rng.choice(fc)["text"]
            pos = ("start", "middle", "end")[rng.randrange(3)]
            add(split, b.embed(text, c, rng, pos, rng.choice([80, max_tok, max_tok])), 1,
                f"written_attack_{lang}+written", "embedded_written", f"wa:{cat}|{g}")
        # hidden in markup
        g, c = carrier(lang, split)
        add(split, _hide(text, b.crop_window(c, rng.randint(30, 80), rng), rng), 1,
            f"written_attack_{lang}+markup", "hidden_markup", f"wa:{cat}")
    # poisoned documents and their clean twins: the same text with and without the injection,
    # the sharpest lesson in what makes a document an attack (split by the pair)
    tdir = os.path.join(root, "twins")
    for lang in sorted(os.listdir(os.path.join(tdir, "clean"))) if os.path.isdir(os.path.join(tdir, "clean")) else []:
        for fn in sorted(os.listdir(os.path.join(tdir, "clean", lang))):
            bad = os.path.join(tdir, "poisoned", lang, fn)
            if not os.path.exists(bad):
                continue
            clean = open(os.path.join(tdir, "clean", lang, fn), encoding="utf-8").read().strip()
            poisoned = open(bad, encoding="utf-8").read().strip()
            split = _split(clean)
            for _ in range(2):
                add(split, b.crop_head(clean, max_tok) if b.ntok(clean) <= max_tok else b.crop_window(clean, max_tok, rng),
                    0, f"written_twin_{lang}", "benign_twin", f"tw:{fn}")
            # the injected span: what the poisoned text has between the common prefix and suffix;
            # every window must contain it, or the label would be wrong
            i = 0
            while i < min(len(clean), len(poisoned)) and clean[i] == poisoned[i]:
                i += 1
            j = 0
            while j < min(len(clean), len(poisoned)) - i and clean[-1 - j] == poisoned[-1 - j]:
                j += 1
            inserted = poisoned[i:len(poisoned) - j]
            if len(inserted.strip()) < 15 or b.ntok(inserted) > max_tok - 8:
                continue
            for _ in range(2):
                budget = max_tok - b.ntok(inserted)
                before = b.crop_tail(poisoned[:i], rng.randint(0, budget))
                after = b.crop_head(poisoned[len(poisoned) - j:], max(0, budget - (b.ntok(before) if before else 0)))
                add(split, before + inserted + after, 1, f"written_twin_{lang}", "poisoned_twin", f"tw:{fn}")
    # encoded with a decoding hint
    for lang in langs:
        mine = [p for p in payloads if p[0] == lang]
        for hint in hints.get(lang, []):
            for _ in range(3):
                src = rng.choice(mine if mine else payloads)
                enc = _encode(src[2], hint)
                if ("rot" in hint.lower() or "leet" in hint.lower()) and lang not in LATIN:
                    src = rng.choice([p for p in payloads if p[0] == "en"])
                    enc = _encode(src[2], hint)
                g, c = carrier(lang, src[3])
                planted = hint.replace("{ENC}", enc)
                add(src[3], b.embed(b.crop_head(planted, 100), c, rng, rng.choice(["start", "middle", "end"]), max_tok), 1,
                    f"written_attack_{lang}+encoded", "encoded_written", f"wa:encoded")
    return counts
