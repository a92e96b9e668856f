#!/usr/bin/env python3
"""Regenerate the bundled sample embeddings in samples/ from the shared WordNet corpus.

Needs numpy and Debian's wordnet-base (for synset structure):
    apt-get install -y wordnet-base && pip install numpy
    python3 scripts/make_samples.py ../shared/data samples

Writes, all embeddings int8 + per-row float32 scale (the shared corpus's own encoding, so rows
are exactly the reference encoder's embeddings as distributed):
  wordnet_sample.{txt,i8.npy,scale.npy,ids.txt}
      2,000 phrases drawn uniformly at random (seed 2026) from the bank; the demo, the bank's
      self-recall check (`lwdec bank info --verify`), tests and benches use them.
  sessions_dev.* / sessions_test.*
      sessions of related phrases: the gloss and usage examples of one WordNet synset, in the
      order WordNet lists them (the phrases share words and a topic). Two disjoint sets of 300
      synsets (seed 7): `dev` to choose the context settings, `test` to report them.
      `*.boundaries.txt` holds the first row of each session.
  validation.*
      2,000 phrases of the held-out validation split (FNV-1a 64 of the UTF-8 phrase % 64 == 0,
      the rule of src/dataset.rs: the generator never trains on them), drawn at random (seed 11).
      The nearest-neighbour baseline bank holds the other (training) phrases:
      `lwdec bank build ... --exclude-validation`.
Phrases are matched to rows of wordnet.txt exactly; parts the corpus filtered out are skipped.
"""
import glob
import os
import sys

import numpy as np


def synset_sessions(index):
    for path in sorted(glob.glob("/usr/share/wordnet/data.*")):
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue
                rows = []
                for part in line.split("|", 1)[1].split(";"):
                    part = part.strip().strip('"').strip()
                    row = index.get(part)
                    if row is not None and row not in rows:
                        rows.append(row)
                if len(rows) >= 3:
                    yield rows[:6]


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def save(out, name, rows, phrases, i8, scale, boundaries=None):
    rows = np.asarray(rows)
    np.save(os.path.join(out, f"{name}.i8.npy"), i8[rows])
    np.save(os.path.join(out, f"{name}.scale.npy"), scale[rows])
    with open(os.path.join(out, f"{name}.txt"), "w", encoding="utf-8") as f:
        f.writelines(phrases[r] + "\n" for r in rows)
    with open(os.path.join(out, f"{name}.ids.txt"), "w") as f:
        f.writelines(f"{r}\n" for r in rows)
    if boundaries is not None:
        with open(os.path.join(out, f"{name}.boundaries.txt"), "w") as f:
            f.writelines(f"{b}\n" for b in boundaries)
    print(f"{name}: {len(rows)} rows")


def main():
    data, out = sys.argv[1:3]
    os.makedirs(out, exist_ok=True)
    phrases = open(os.path.join(data, "wordnet.txt"), encoding="utf-8").read().split("\n")[:-1]
    i8 = np.load(os.path.join(data, "wordnet.i8.npy"), mmap_mode="r")
    scale = np.load(os.path.join(data, "wordnet.scale.npy"))
    sample = np.random.default_rng(2026).choice(len(phrases), 2000, replace=False)
    save(out, "wordnet_sample", sample, phrases, i8, scale)

    index = {p: i for i, p in enumerate(phrases)}
    sessions = list(synset_sessions(index))
    order = np.random.default_rng(7).permutation(len(sessions))
    for name, chosen in (("sessions_dev", order[:300]), ("sessions_test", order[300:600])):
        rows, boundaries = [], []
        for s in chosen:
            boundaries.append(len(rows))
            rows.extend(sessions[s])
        save(out, name, rows, phrases, i8, scale, boundaries)

    validation = np.array([i for i, p in enumerate(phrases) if fnv1a64(p.encode("utf-8")) % 64 == 0])
    print(f"validation split: {len(validation)} phrases")
    chosen = np.sort(np.random.default_rng(11).choice(validation, 2000, replace=False))
    save(out, "validation", chosen, phrases, i8, scale)


if __name__ == "__main__":
    main()
