#!/usr/bin/env python3
"""Draw the bundled corpus sample samples/corpus_sample.{txt,i8.npy,scale.npy}: 2,000 random
sentences of the corpus's train split (seed 16), embedded with all-mpnet-base-v2 and stored as
int8 + scale like every sample. The broad default bank holds the train split, so
`lwdec bank info --verify` decodes these to measure in-bank recovery on corpus sentences (beside
the WordNet sample).

Usage: HF_HUB_OFFLINE=1 .venv/bin/python scripts/corpus/make_corpus_sample.py [--rows 2000]
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_corpus import CACHE, MODEL_CANDIDATES, atomic_save, quantize  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    lines = (CACHE / "train.txt").read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    rows = np.sort(np.random.default_rng(args.seed).choice(len(lines), args.rows, replace=False))
    texts = [lines[i] for i in rows]
    model_dir = next(p for p in MODEL_CANDIDATES if (p / "config.json").exists())
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(2)
    model = SentenceTransformer(str(model_dir), device="cpu")
    order = np.argsort([len(t) for t in texts], kind="stable")
    emb = np.zeros((len(texts), 768), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(texts), 64):
            idx = order[s:s + 64]
            emb[idx] = model.encode([texts[i] for i in idx], batch_size=len(idx),
                                    normalize_embeddings=True, convert_to_numpy=True)
    q, scale = quantize(emb)
    out = REPO / "samples"
    atomic_save(out / "corpus_sample.i8.npy", q)
    atomic_save(out / "corpus_sample.scale.npy", scale)
    tmp = out / ".corpus_sample.txt.tmp"
    tmp.write_text("\n".join(texts) + "\n", encoding="utf-8")
    os.replace(tmp, out / "corpus_sample.txt")
    print(f"wrote {len(texts)} train-split sentences to {out}/corpus_sample.*")


if __name__ == "__main__":
    main()
