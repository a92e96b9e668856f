#!/usr/bin/env python3
"""Draw the calibration set of the broad hybrid's rule: N random sentences (seed 17) of the
corpus's validation split (never banked or trained on) that are not in
samples/corpus_validation (the reported sample), each at cosine 1, 0.9 and 0.8 to its
embedding (Gaussian noise orthogonal to it, as the crate's perturb_to_cosine), so that the
rule is fitted on clean and on inexact inputs like an upstream network's.

Usage: .venv/bin/python scripts/corpus/make_calibration_set.py [--rows 400]
Writes $CACHE/corpus/calibration/{input.f32.npy, reference.txt} (3 x rows, level by level),
for `lwdec calibrate --input input.f32.npy --reference reference.txt` (scripts/calibrate_broad_hybrid.sh).
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_corpus import CACHE, atomic_save, chunk_ok  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LEVELS = (1.0, 0.9, 0.8)


def perturb(v, cosine, rng):
    """Unit rows at `cosine` to the unit rows `v`."""
    if cosine >= 1.0:
        return v
    noise = rng.standard_normal(v.shape).astype(np.float32)
    noise -= (noise * v).sum(1, keepdims=True) * v
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = cosine * v + np.sqrt(1 - cosine * cosine) * noise
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--seed", type=int, default=17)
    args = ap.parse_args()
    lines = (CACHE / "validation.txt").read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    reported = set((REPO / "samples" / "corpus_validation.txt").read_text(encoding="utf-8").splitlines())
    chunk, emb = 4096, CACHE / "emb" / "validation"
    i8 = np.empty((len(lines), 768), dtype=np.int8)
    scale = np.empty(len(lines), dtype=np.float32)
    for k in range((len(lines) + chunk - 1) // chunk):
        n = min(chunk, len(lines) - k * chunk)
        path = emb / f"chunk-{k:05d}.npz"
        if not chunk_ok(path, n):
            sys.exit(f"{path} missing: run embed_corpus.py validation first")
        with np.load(path) as z:
            i8[k * chunk:k * chunk + n] = z["i8"]
            scale[k * chunk:k * chunk + n] = z["scale"]
    pool = [i for i, t in enumerate(lines) if t not in reported]
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(pool, min(args.rows, len(pool)), replace=False))
    clean = i8[rows].astype(np.float32) * scale[rows, None]
    clean /= np.linalg.norm(clean, axis=1, keepdims=True)
    x = np.concatenate([perturb(clean, c, rng) for c in LEVELS]).astype(np.float32)
    out = CACHE / "calibration"
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(out / "input.f32.npy", x)
    tmp = out / ".reference.txt.tmp"
    tmp.write_text("".join(lines[i] + "\n" for i in rows) * len(LEVELS), encoding="utf-8")
    os.replace(tmp, out / "reference.txt")
    print(f"wrote {len(x)} rows ({len(rows)} sentences at cosines {LEVELS}) to {out}")


if __name__ == "__main__":
    main()
