#!/usr/bin/env python3
"""Draw the calibration set of the broad hybrid's rule: N random sentences (seed 17) of the
corpus's validation split (never banked or trained on) that are not in
samples/corpus_validation (the reported sample), with their embeddings.
scripts/calibrate_broad_hybrid.sh fits on them clean and at cosine 0.9 and 0.8
(`lwdec calibrate --noise-cosine 1,0.9,0.8`), like an upstream network's inexact inputs.

Usage: .venv/bin/python scripts/corpus/make_calibration_set.py [--rows 400]
Writes $CACHE/corpus/calibration/{input.i8.npy, input.scale.npy, reference.txt}.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_corpus import CACHE, atomic_save, load_split  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()
    lines, i8, scale = load_split("validation")
    reported = set((REPO / "samples" / "corpus_validation.txt").read_text(encoding="utf-8").splitlines())
    pool = [i for i, t in enumerate(lines) if t not in reported]
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(pool, min(args.rows, len(pool)), replace=False))
    out = CACHE / "calibration"
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(out / "input.i8.npy", i8[rows])
    atomic_save(out / "input.scale.npy", scale[rows])
    tmp = out / ".reference.txt.tmp"
    tmp.write_text("".join(lines[i] + "\n" for i in rows), encoding="utf-8")
    os.replace(tmp, out / "reference.txt")
    print(f"wrote {len(rows)} validation-split sentences to {out}")


if __name__ == "__main__":
    main()
