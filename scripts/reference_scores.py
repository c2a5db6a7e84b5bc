#!/usr/bin/env python3
"""The reference implementation of ragwall's model scoring, in Python (onnxruntime + tokenizers),
for the test that checks the Rust runtime against it on the same machine.

  python3 scripts/reference_scores.py MODEL_DIR < texts.jsonl > scores.jsonl

Input: one JSON string per line (ASCII text: no normalization applies). Output: one score per
line. Each text is tokenized without special tokens, cut into windows of `max_length` minus the
tokenizer's own special-token frame every 64 tokens, framed, and scored one window per session
call (int8 models are not batch invariant); score = max over windows of softmax(logits)[label].
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    d = sys.argv[1]
    manifest = open(os.path.join(d, "model.toml"), encoding="utf-8").read()
    get = lambda k, default: next((int(l.split("=")[1].split("#")[0]) for l in manifest.splitlines()
                                   if l.startswith(k + " ")), default)
    max_len, label = get("max_length", 128), get("injection_label", 1)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    framed, bare = tok.encode("a", add_special_tokens=True).ids, tok.encode("a", add_special_tokens=False).ids
    i = framed.index(bare[0])
    pre, post = framed[:i], framed[i + len(bare):]
    win = max_len - len(pre) - len(post)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"])
    inputs = {x.name for x in sess.get_inputs()}
    for line in sys.stdin:
        ids = tok.encode(json.loads(line), add_special_tokens=False).ids
        starts = [0]
        while starts[-1] + win < len(ids):
            starts.append(starts[-1] + 64)
        best = 0.0
        for st in starts:
            w = np.array([pre + ids[st:st + win] + post], dtype=np.int64)
            feed = {"input_ids": w, "attention_mask": np.ones_like(w)}
            if "token_type_ids" in inputs:
                feed["token_type_ids"] = np.zeros_like(w)
            lg = sess.run(None, feed)[0][0].astype(np.float64)
            p = np.exp(lg - lg.max())
            best = max(best, float(p[label] / p.sum()))
        print(best)


if __name__ == "__main__":
    main()
