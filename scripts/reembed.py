#!/usr/bin/env python3
"""Round-trip cosine: re-embed decoded text with the reference encoder and compare it with the
embedding it was decoded from (the field's standard measure of semantic fidelity).

Setup once: bash scripts/install-encoder.sh --python
Usage:
  lwdec eval --input X.npy [--scale S.npy] --reference X.txt --decoder all --decoded D.jsonl
  HF_HUB_OFFLINE=1 .venv/bin/python scripts/reembed.py --input X.npy [--scale S.npy] \
      --decoded D.jsonl [--model .venv/all-mpnet-base-v2] [--output R.json]
Prints, per decoder, the mean and quantiles of cos(input, encoder(decoded text)). Inputs are
compared as given (after unit normalisation); with `lwdec eval --noise-cosine`, pass the same
clean input: the score is then the fidelity to the clean meaning.
"""
import argparse
import collections
import json

import numpy as np
from sentence_transformers import SentenceTransformer


def load(path, scale):
    x = np.load(path).astype(np.float32)
    if scale:
        x = x * np.load(scale)[:, None]
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--scale")
    ap.add_argument("--decoded", required=True)
    ap.add_argument("--model", default=".venv/all-mpnet-base-v2")
    ap.add_argument("--output")
    args = ap.parse_args()
    x = load(args.input, args.scale)
    by_decoder = collections.defaultdict(dict)
    for line in open(args.decoded, encoding="utf-8"):
        d = json.loads(line)
        by_decoder[d["decoder"]][d["row"]] = d["text"]
    model = SentenceTransformer(args.model, device="cpu")
    report = {}
    for name, rows in by_decoder.items():
        idx = sorted(rows)
        emb = model.encode([rows[i] for i in idx], batch_size=128, normalize_embeddings=True,
                           convert_to_numpy=True)
        cos = (emb * x[idx]).sum(axis=1)
        report[name] = {
            "rows": len(idx),
            "mean_cosine": float(cos.mean()),
            "p10": float(np.quantile(cos, 0.1)),
            "median": float(np.median(cos)),
            "p90": float(np.quantile(cos, 0.9)),
        }
        r = report[name]
        print(f"{name:<14} rows {r['rows']:>6}  round-trip cosine mean {r['mean_cosine']:.4f}"
              f"  p10 {r['p10']:.4f}  median {r['median']:.4f}  p90 {r['p90']:.4f}")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
