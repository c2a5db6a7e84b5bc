#!/usr/bin/env python3
"""Fine-tune all-MiniLM-L6-v2 (optionally only its first --layers transformer layers) as a
2-class prompt-injection classifier on CPU.

Keeping the bottom layers and dropping the top ones is the truncation that loses least
after fine-tuning (Sajjad et al., 2023, "On the effect of dropping layers of pre-trained
transformer models"); it makes scoring proportionally faster, which is what the offline
scanner needs on 2 cores.

Time-bounded (--max-minutes): stops cleanly when the budget is used up and keeps
the best checkpoint (by validation ROC-AUC/F1) in OUT/best and the latest in
OUT/last. Label 1 = injection. Inputs are already normalised by build_data.py.
"""
import argparse
import json
import math
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification, get_linear_schedule_with_warmup


def load(path):
    return [json.loads(l) for l in open(path, encoding="utf-8")]


def auc(y, s):
    y, s = np.asarray(y), np.asarray(s)
    order = np.argsort(s)
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    # average ranks for ties
    _, inv, cnt = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / cnt)[inv]
    npos = y.sum()
    nneg = len(y) - npos
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def batches_length_grouped(lengths, bs, rng):
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    # sort within mega-batches of 50 batches, then shuffle the batches
    mega = bs * 50
    out = []
    for i in range(0, len(idx), mega):
        chunk = sorted(idx[i:i + mega], key=lambda j: lengths[j])
        out += [chunk[k:k + bs] for k in range(0, len(chunk), bs)]
    rng.shuffle(out)
    return out


@torch.no_grad()
def predict(model, enc_list, bs=64):
    model.eval()
    order = sorted(range(len(enc_list)), key=lambda i: len(enc_list[i]))
    scores = [0.0] * len(enc_list)
    for k in range(0, len(order), bs):
        ids = [enc_list[i] for i in order[k:k + bs]]
        L = max(len(x) for x in ids)
        inp = torch.zeros(len(ids), L, dtype=torch.long)
        att = torch.zeros(len(ids), L, dtype=torch.long)
        for j, x in enumerate(ids):
            inp[j, :len(x)] = torch.tensor(x)
            att[j, :len(x)] = 1
        logits = model(input_ids=inp, attention_mask=att, token_type_ids=torch.zeros_like(inp)).logits
        p = torch.softmax(logits, -1)[:, 1].tolist()
        for j, i in enumerate(order[k:k + bs]):
            scores[i] = p[j]
    model.train()
    return scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="dir with config.json, model.safetensors, tokenizer.json")
    ap.add_argument("--data", default="out")
    ap.add_argument("--out", default="out/ckpt")
    ap.add_argument("--max-minutes", type=float, default=70)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup", type=float, default=0.06)
    ap.add_argument("--eval-every", type=int, default=300)
    ap.add_argument("--val-max", type=int, default=1200, help="val rows used for periodic eval")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=0, help="keep only the first N encoder layers (0 = all)")
    ap.add_argument("--freeze-embeddings", action="store_true",
                    help="keep the word embeddings fixed: a multilingual encoder keeps its cross-lingual "
                         "alignment for the languages and words the training data does not cover")
    ap.add_argument("--resume", action="store_true",
                    help="continue from OUT/last + OUT/state.pt when they exist (same data, same arguments)")
    a = ap.parse_args()

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    t0 = time.time()
    deadline = t0 + a.max_minutes * 60

    tok = AutoTokenizer.from_pretrained(a.base)
    cfg = AutoConfig.from_pretrained(a.base, num_labels=2, id2label={0: "benign", 1: "injection"},
                                     label2id={"benign": 0, "injection": 1})
    if a.layers:
        cfg.num_hidden_layers = a.layers  # from_pretrained then loads layers 0..N-1 and ignores the rest
    state_path = os.path.join(a.out, "state.pt")
    resuming = a.resume and os.path.exists(state_path) and os.path.isdir(os.path.join(a.out, "last"))
    model = BertForSequenceClassification.from_pretrained(os.path.join(a.out, "last") if resuming else a.base,
                                                          config=None if resuming else cfg)
    if a.freeze_embeddings:
        model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    print(f"encoder layers: {model.config.num_hidden_layers}; resuming: {resuming}", flush=True)
    model.train()
    train = load(os.path.join(a.data, "train.jsonl"))
    val = load(os.path.join(a.data, "val.jsonl"))
    vrng = random.Random(a.seed)
    vrng.shuffle(val)
    val = val[:a.val_max]
    enc = lambda rows: tok([r["text"] for r in rows], truncation=True, max_length=128, add_special_tokens=True)["input_ids"]
    tr_ids, va_ids = enc(train), enc(val)
    tr_y = [r["label"] for r in train]
    va_y = [r["label"] for r in val]
    print(f"train {len(train)} val(eval subset) {len(val)} mean len {np.mean([len(x) for x in tr_ids]):.1f}", flush=True)

    steps_per_epoch = math.ceil(len(train) / a.bs)
    total = int(steps_per_epoch * a.epochs)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.01)
    sch = get_linear_schedule_with_warmup(opt, int(total * a.warmup), total)
    step, seen, best, hist = 0, 0, -1.0, []
    ep, skip = 0, 0  # epoch, and batches of it already done (when resuming)
    os.makedirs(a.out, exist_ok=True)
    if resuming:
        st = torch.load(state_path, weights_only=False)
        opt.load_state_dict(st["opt"])
        sch.load_state_dict(st["sch"])
        step, seen, best, hist, ep, skip = st["step"], st["seen"], st["best"], st["hist"], st["ep"], st["batch_in_epoch"]
        t0 -= st["elapsed"]
        deadline = time.time() + a.max_minutes * 60 - st["elapsed"]
        print(f"resumed at step {step} (epoch {ep}, batch {skip}), {st['elapsed'] / 60:.1f} min already spent", flush=True)
    progress = {"ep": ep, "batch": skip}

    def evaluate_and_save(tag):
        nonlocal best
        s = predict(model, va_ids)
        y = np.array(va_y)
        sc = np.array(s)
        pred = sc >= 0.5
        tp = int((pred & (y == 1)).sum()); fp = int((pred & (y == 0)).sum()); fn = int((~pred & (y == 1)).sum())
        f1 = 2 * tp / max(1, 2 * tp + fp + fn)
        neg = np.sort(sc[y == 0])
        thr = neg[int(math.ceil(0.99 * len(neg))) - 1] if len(neg) else 0.5
        rec1 = float((sc[y == 1] > thr).mean())
        au = auc(y, sc)
        score = au + rec1 + f1
        rec = {"step": step, "epoch": round(seen / len(train), 3), "min": round((time.time() - t0) / 60, 2),
               "val_auc": round(au, 5), "val_f1": round(f1, 4), "val_recall_at_1pct_fpr": round(rec1, 4), "tag": tag}
        hist.append(rec)
        is_best = score > best
        if is_best:
            best = score
            best = score
            model.save_pretrained(os.path.join(a.out, "best"))
            tok.save_pretrained(os.path.join(a.out, "best"))
            rec["best"] = True
        # the resumable state: weights, optimizer, schedule and position in the data, written
        # last and renamed into place so an interrupted save never leaves a torn checkpoint
        model.save_pretrained(os.path.join(a.out, "last"))
        tok.save_pretrained(os.path.join(a.out, "last"))
        torch.save({"opt": opt.state_dict(), "sch": sch.state_dict(), "step": step, "seen": seen, "best": best,
                    "hist": hist, "ep": progress["ep"], "batch_in_epoch": progress["batch"],
                    "elapsed": time.time() - t0}, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)
        print(json.dumps(rec), flush=True)
        json.dump(hist, open(os.path.join(a.out, "history.json"), "w"), indent=1)

    stop = False
    loss_acc, n_acc = 0.0, 0
    while not stop and step < total:
        for bi, b in enumerate(batches_length_grouped([len(x) for x in tr_ids], a.bs, random.Random(a.seed + ep))):
            if bi < skip:
                continue
            progress["ep"], progress["batch"] = ep, bi + 1
            L = max(len(tr_ids[i]) for i in b)
            inp = torch.zeros(len(b), L, dtype=torch.long)
            att = torch.zeros(len(b), L, dtype=torch.long)
            for j, i in enumerate(b):
                inp[j, :len(tr_ids[i])] = torch.tensor(tr_ids[i])
                att[j, :len(tr_ids[i])] = 1
            lab = torch.tensor([tr_y[i] for i in b])
            out = model(input_ids=inp, attention_mask=att, token_type_ids=torch.zeros_like(inp), labels=lab)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sch.step(); opt.zero_grad()
            step += 1; seen += len(b)
            loss_acc += out.loss.item(); n_acc += 1
            if step % 50 == 0:
                el = time.time() - t0
                print(f"step {step}/{total} ep {seen/len(train):.2f} loss {loss_acc/n_acc:.4f} lr {sch.get_last_lr()[0]:.2e} "
                      f"{seen/el:.1f} ex/s elapsed {el/60:.1f} min", flush=True)
                loss_acc, n_acc = 0.0, 0
            if step % a.eval_every == 0:
                evaluate_and_save(f"step{step}")
            # leave ~3 minutes for the final evaluation + save
            if time.time() > deadline - 180 or step >= total:
                stop = True
                break
        if not stop:
            ep, skip = ep + 1, 0
            progress["ep"], progress["batch"] = ep, 0
    evaluate_and_save("final")
    summary = {"steps": step, "examples_seen": seen, "epochs": seen / len(train), "minutes": (time.time() - t0) / 60,
               "examples_per_s": seen / (time.time() - t0), "best": max(hist, key=lambda r: r["val_auc"] + r["val_f1"] + r["val_recall_at_1pct_fpr"])}
    json.dump(summary, open(os.path.join(a.out, "train_summary.json"), "w"), indent=1)
    print("DONE", json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
