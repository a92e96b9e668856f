#!/usr/bin/env python3
"""Draw samples/corpus_validation.{txt,i8.npy,scale.npy}: 200 random sentences (seed 16) of the
corpus's validation split (a fixed ~1% of the train sources' sentences, never trained on or
banked), with their embeddings from scripts/corpus/embed_corpus.py's validation chunks. A
held-out sample in the domains the broad bank covers, beside samples/ood (crate descriptions,
docstrings) and samples/ood2 (the held-out sources perl-doc and janeaustenr).

Usage: .venv/bin/python scripts/corpus/make_validation_sample.py [--rows 200]
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_corpus import atomic_save, load_split  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    lines, i8, scale = load_split("validation")
    rows = np.sort(np.random.default_rng(args.seed).choice(len(lines), args.rows, replace=False))
    out = REPO / "samples"
    atomic_save(out / "corpus_validation.i8.npy", i8[rows])
    atomic_save(out / "corpus_validation.scale.npy", scale[rows])
    tmp = out / ".corpus_validation.txt.tmp"
    tmp.write_text("\n".join(lines[i] for i in rows) + "\n", encoding="utf-8")
    os.replace(tmp, out / "corpus_validation.txt")
    for p in out.glob("corpus_validation.*"):
        p.chmod(0o644)
    print(f"wrote {len(rows)} validation-split sentences to {out}/corpus_validation.*")


if __name__ == "__main__":
    main()
