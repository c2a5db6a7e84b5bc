#!/usr/bin/env python3
"""ragwall's classifier against a bare Python loop on the same model, texts, batch and threads.

Usage: scripts/bench_classifier.py [--batch 16] [--threads 2] [--n 512] [--model-dir DIR]
(run scripts/setup.sh first; this script builds the Rust driver itself).

Both sides: tokenize a batch (HF `tokenizers`), pad to the batch's longest text, run the ONNX
session (onnxruntime, same library file), softmax. Texts are ~100-token chunks so each is one
window on both sides. Prints chunks/s and tokens/s of each, the ratio ragwall/python, ragwall's
p50/p99 latency for a top-10 batch of ~256-token chunks cold and cached, and peak RSS.
"""
import argparse, json, os, random, resource, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

WORDS = ("the service configuration file restart system user data report quarterly revenue team "
         "ignore previous instructions override policy install package network security update "
         "document summary customer support refund shipping order account password reset email").split()


def make_texts(n, seed=7):
    rnd = random.Random(seed)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(70, 95))) + "." for _ in range(n)]


def python_baseline(model_dir, texts, batch, threads):
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_truncation(); tok.no_padding()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model_dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}

    def run(group):
        enc = tok.encode_batch(group)
        L = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), L), np.int64); mask = np.zeros_like(ids)
        for r, e in enumerate(enc):
            ids[r, :len(e.ids)] = e.ids; mask[r, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        logits = sess.run(None, feed)[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True))[:, 1], int(mask.sum())

    run(texts[:batch])
    t = time.perf_counter(); tokens = 0
    for i in range(0, len(texts), batch):
        _, n = run(texts[i:i + batch]); tokens += n
    secs = time.perf_counter() - t
    return {"chunks_per_s": len(texts) / secs, "tokens_per_s": tokens / secs, "seconds": secs, "tokens": tokens}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--model-dir", default=str(ROOT / "models" / "ragwall-minilm-injection"))
    a = ap.parse_args()
    model_dir = Path(a.model_dir)
    texts = make_texts(a.n)
    tmp = ROOT / "target" / "bench_texts.jsonl"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "bench_classifier"], cwd=ROOT, check=True)
    exe = ROOT / "target" / "release" / "examples" / "bench_classifier"
    env = dict(os.environ)
    if "ORT_DYLIB_PATH" not in env:
        env["ORT_DYLIB_PATH"] = str(Path(ort.__file__).parent / "capi" / sorted(
            p for p in os.listdir(Path(ort.__file__).parent / "capi") if p.startswith("libonnxruntime.so"))[-1])
    # Alternate the two sides twice and keep each side's best run, so background load on this
    # 2-core machine does not decide the ratio.
    rw, py = [], []
    for _ in range(2):
        r = subprocess.run([str(exe), str(model_dir), str(tmp), str(a.batch), str(a.threads)],
                           cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        rw.append(json.loads(r.stdout.strip().splitlines()[-1]))
        py.append(python_baseline(model_dir, texts, a.batch, a.threads))
    r = max(rw, key=lambda x: x["chunks_per_s"]); p = max(py, key=lambda x: x["chunks_per_s"])
    tokens_per_s = p["tokens"] / (a.n / r["chunks_per_s"])
    print(f"model: {model_dir.name}  texts: {a.n} x ~{p['tokens'] // a.n} tokens  batch {a.batch}  threads {a.threads}")
    print(f"{'':10} {'chunks/s':>10} {'tokens/s':>10}")
    print(f"{'python':10} {p['chunks_per_s']:10.1f} {p['tokens_per_s']:10.0f}")
    print(f"{'ragwall':10} {r['chunks_per_s']:10.1f} {tokens_per_s:10.0f}")
    print(f"ratio ragwall/python: {r['chunks_per_s'] / p['chunks_per_s']:.3f}")
    print(f"top-10 batch of ~256-token chunks: cold p50 {r['top10_256tok_cold_p50_ms']:.1f} ms, "
          f"p99 {r['top10_256tok_cold_p99_ms']:.1f} ms; cached p50 {r['top10_256tok_cached_p50_ms']:.3f} ms, "
          f"p99 {r['top10_256tok_cached_p99_ms']:.3f} ms")
    print(f"peak RSS: ragwall {r['peak_rss_mib']:.0f} MiB, python {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
