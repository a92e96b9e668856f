#!/usr/bin/env python3
"""Assemble the broad default bank's input: WordNet first (its ids stay those of the WordNet
bank), then the corpus's train split with the embeddings of scripts/corpus/embed_corpus.py.

Usage:
  .venv/bin/python scripts/corpus/bank_input.py [--data ../shared/data] [--partial]
        [--extend corpus/bank_stages.json]
  .venv/bin/python scripts/corpus/bank_input.py --record-stage corpus/bank_stages.json
        --bank phrase_bank [--append]

Writes $CACHE/corpus/bank/{phrases.txt, i8.npy, scale.npy, meta.json}
(CACHE=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}), each atomically, for
`lwdec bank build|extend --phrases .. --embeddings i8.npy --scale scale.npy`
(scripts/build_default_bank.sh). Without --partial every train chunk must be embedded; with
it, the finished chunks are used (each chunk is a uniform random sample of the split,
embed_corpus.py, so any set of them is too). --extend STAGES: only the corpus rows of
finished chunks that no stage of the bank listed in STAGES holds, and no WordNet (they go to
`lwdec bank extend`). meta.json lists the chunks used. Only the train split goes in:
validation and ood are held out (never banked). Prints the row counts.

--record-stage STAGES, after `lwdec bank build|extend` has saved the bank: writes the
stage of the last input (meta.json: its chunks and rows, and the bank's phrase count from
BANK/manifest.json) to STAGES, appended with --append (an extension), else as the first.
"""
import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_corpus import (  # noqa: E402  (same folder)
    CACHE, atomic_save, finished_chunks, split_lines, staged_chunks)

REPO = Path(__file__).resolve().parents[2]


def write_text(path, text):
    """Writes text to path atomically (temp file + rename), readable by all."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def record_stage(stages_path, bank_dir, append):
    """Adds the stage of the last input ($CACHE/corpus/bank/meta.json) to stages_path."""
    meta = json.loads((CACHE / "bank" / "meta.json").read_text())
    count = json.loads((Path(bank_dir) / "manifest.json").read_text())["count"]
    doc = json.loads(Path(stages_path).read_text()) if append else {
        "about": "Stages of phrase_bank/ (scripts/build_default_bank.sh): the corpus train chunks "
                 "(scripts/corpus/embed_corpus.py) each stage added, in order",
        "stages": []}
    doc["stages"].append({"train_chunks": meta["train_chunks"], "corpus_rows": meta["corpus_rows"],
                          "wordnet_rows": meta["wordnet_rows"], "bank_phrases": count,
                          "train_sha256": meta["train_sha256"]})
    text = json.dumps(doc, indent=1)
    # each chunk list on one line
    text = re.sub(r"\[\s*(\d[\d,\s]*?)\s*\]",
                  lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    write_text(stages_path, text + "\n")
    held = sum(len(s["train_chunks"]) for s in doc["stages"])
    print(f"{stages_path}: {len(doc['stages'])} stage(s), {held} of "
          f"{meta['train_chunk_count']} train chunks, {count} phrases")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"),
                    help="folder with wordnet.txt, wordnet.i8.npy, wordnet.scale.npy")
    ap.add_argument("--partial", action="store_true", help="use the finished train chunks only")
    ap.add_argument("--extend", metavar="STAGES",
                    help="only chunks that the stages in this file do not hold; no WordNet")
    ap.add_argument("--record-stage", metavar="STAGES",
                    help="write the last input's stage to this file (after the bank is saved)")
    ap.add_argument("--bank", default=str(REPO / "phrase_bank"), help="with --record-stage")
    ap.add_argument("--append", action="store_true", help="with --record-stage: an extension")
    args = ap.parse_args()
    if args.record_stage:
        record_stage(args.record_stage, args.bank, args.append)
        return

    emb = CACHE / "emb" / "train"
    meta = json.loads((emb / "meta.json").read_text())
    lines = split_lines("train")
    chunk, rows = meta["chunk"], meta["rows"]
    if rows != len(lines):
        sys.exit(f"{emb}/meta.json says {rows} rows, train.txt has {len(lines)}: re-run embed_corpus.py train")
    n_chunks = (rows + chunk - 1) // chunk
    done = finished_chunks("train", lines, chunk)
    if len(done) < n_chunks and not (args.partial or args.extend):
        sys.exit(f"train: {len(done)} of {n_chunks} chunks embedded; finish embed_corpus.py train "
                 "or pass --partial")
    if args.extend:
        held = staged_chunks(args.extend, meta["sha256"])
        done = [(k, r) for k, r in done if k not in held]
        if not done:
            sys.exit(f"train: no finished chunk beyond the {len(held)} that {args.extend} lists")

    if args.extend:
        wn_text, wn_i8, wn_scale = [], np.empty((0, 768), np.int8), np.empty(0, np.float32)
    else:
        data = Path(args.data)
        wn_text = (data / "wordnet.txt").read_text(encoding="utf-8").split("\n")
        if wn_text and wn_text[-1] == "":
            wn_text.pop()
        wn_i8 = np.load(data / "wordnet.i8.npy", mmap_mode="r")
        wn_scale = np.load(data / "wordnet.scale.npy")
        if not (len(wn_text) == wn_i8.shape[0] == wn_scale.shape[0]) or wn_i8.shape[1] != 768:
            sys.exit(f"{data}: wordnet.txt, .i8.npy and .scale.npy disagree on the row count")

    n_corpus = sum(len(r) for _, r in done)
    n = len(wn_text) + n_corpus
    i8 = np.empty((n, 768), dtype=np.int8)
    scale = np.empty(n, dtype=np.float32)
    i8[:len(wn_text)] = wn_i8
    scale[:len(wn_text)] = wn_scale
    phrases = list(wn_text)
    at = len(wn_text)
    for k, chunk_rows in done:
        with np.load(emb / f"chunk-{k:05d}.npz") as z:
            m = z["i8"].shape[0]
            i8[at:at + m] = z["i8"]
            scale[at:at + m] = z["scale"]
        phrases.extend(lines[r] for r in chunk_rows)
        at += m
    if any("\n" in p or "\r" in p for p in phrases):
        sys.exit("a phrase contains a line break")

    out = CACHE / "bank"
    out.mkdir(parents=True, exist_ok=True)
    atomic_save(out / "i8.npy", i8)
    atomic_save(out / "scale.npy", scale)
    info = {"wordnet_rows": len(wn_text), "corpus_rows": n_corpus,
            "train_chunks": [k for k, _ in done], "train_chunk_count": n_chunks,
            "train_sha256": meta["sha256"]}
    write_text(out / "phrases.txt", "\n".join(phrases) + "\n")
    write_text(out / "meta.json", json.dumps(info, indent=2) + "\n")
    print(f"bank input: {len(wn_text)} WordNet + {n_corpus} corpus phrases "
          f"({len(done)} of {n_chunks} train chunks) -> {out}")


if __name__ == "__main__":
    main()
