#!/usr/bin/env python3
"""Research aid (plan.md, 2026-11-23): how far could re-ranking the generator's own samples go?

Embeds every candidate written by `cargo run --release --example candidates -- MODEL
samples/validation.i8.npy samples/validation.scale.npy ROWS SAMPLES TEMP > C.jsonl` with the
reference encoder and prints the token F1 of greedy, MBR consensus, the candidate closest to the
input embedding (round-trip cosine), mixes of the two, and the oracle.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python scripts/rerank_candidates.py C.jsonl
"""
import collections
import json
import re
import sys

import numpy as np
from sentence_transformers import SentenceTransformer


def toks(t):
    return [w for w in re.split(r"[^0-9a-zA-Z\u00C0-\uFFFF]+", t.lower()) if w]


def f1(h, r):
    h, r = toks(h), toks(r)
    if not h or not r:
        return float(not h and not r)
    c = collections.Counter(r)
    common = 0
    for w in h:
        if c[w] > 0:
            c[w] -= 1
            common += 1
    if common == 0:
        return 0.0
    p, rr = common / len(h), common / len(r)
    return 2 * p * rr / (p + rr)


def main():
    cand = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
    refs = open("samples/validation.txt", encoding="utf-8").read().split("\n")
    x = np.load("samples/validation.i8.npy").astype(np.float32)
    x = x * np.load("samples/validation.scale.npy")[:, None]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    model = SentenceTransformer(".venv/all-mpnet-base-v2", device="cpu")
    emb = model.encode([c["text"] for c in cand], batch_size=128, normalize_embeddings=True)
    rows = collections.defaultdict(list)
    for c, e in zip(cand, emb):
        rows[c["row"]].append((c["text"], e))
    res = collections.defaultdict(list)
    for r, cs in rows.items():
        texts = [t for t, _ in cs]
        f = np.array([f1(t, refs[r]) for t in texts])
        cos = np.array([e @ x[r] for _, e in cs])
        mbr = np.array([np.mean([f1(t, u) for j, u in enumerate(texts) if j != i])
                        for i, t in enumerate(texts)])
        res["greedy"].append(f[0])
        res["mbr"].append(f[np.argmax(mbr)])
        res["round-trip cosine"].append(f[np.argmax(cos)])
        res["cosine + 0.5 mbr"].append(f[np.argmax(cos + 0.5 * mbr)])
        res["oracle"].append(f.max())
    for k, v in res.items():
        print(f"{k:20s} {np.mean(v):.4f}")


if __name__ == "__main__":
    main()
