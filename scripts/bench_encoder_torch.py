#!/usr/bin/env python3
"""Sentences per second of PyTorch sentence-transformers all-mpnet-base-v2 on CPU with 2 threads,
at batch 1 and batch 64, on 2,000 real sentences: all 200 lines of samples/ood.txt, the first
1,000 of samples/validation.txt and the first 800 of samples/wordnet_sample.txt (the same as the
Rust encoder's bench). Prints {"batch1": s_per_s, "batch64": s_per_s}.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encoder_torch.py [MODEL_DIR] [THREADS] [N]
(N: time the first N sentences only; default all 2,000.)
"""
import json
import os
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lines(name, n):
    with open(os.path.join(ROOT, "samples", name), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f][:n]


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".venv", "all-mpnet-base-v2")
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(threads)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    sents = lines("ood.txt", 200) + lines("validation.txt", 1000) + lines("wordnet_sample.txt", 800)
    sents = sents[:n]
    model = SentenceTransformer(model_dir, device="cpu")
    out = {}
    with torch.inference_mode():
        for batch in (1, 64):
            model.encode(sents[:64], batch_size=batch, normalize_embeddings=True)  # warm-up
            t = time.perf_counter()
            emb = model.encode(sents, batch_size=batch, normalize_embeddings=True)
            s = time.perf_counter() - t
            assert emb.shape == (len(sents), 768)
            print(f"batch {batch}: {s:.1f} s, {len(sents) / s:.1f} sentences/s", file=sys.stderr)
            out[f"batch{batch}"] = round(len(sents) / s, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
