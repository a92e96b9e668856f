#!/usr/bin/env python3
"""Embed a corpus split with all-mpnet-base-v2, resumably, in chunks cached outside the repo.

Usage (with the encoder of scripts/install-encoder.sh):
  HF_HUB_OFFLINE=1 .venv/bin/python scripts/corpus/embed_corpus.py SPLIT [SPLIT ...]
        [--model DIR] [--chunk 4096] [--batch 64] [--threads 2] [--merge]

SPLIT is validation, ood, train (files $CACHE/corpus/SPLIT.txt of
scripts/corpus/build_corpus.py; CACHE=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}).
Lines [k*chunk, (k+1)*chunk) of the split go to $CACHE/corpus/emb/SPLIT/chunk-KKKKK.npz
(arrays i8: int8 (n, 768), scale: float32 (n,), embedding = i8 * scale, the convention
of shared/data), each written atomically (temp file + rename). Chunks already present
(and of the right row count) are skipped, so a killed run resumes where it stopped; a
new machine regenerates them. The split file's sha256 is recorded in
emb/SPLIT/meta.json: if the split changes, the old chunks are discarded.
--merge concatenates the chunks into emb/SPLIT.i8.npy + emb/SPLIT.scale.npy (rows in
the order of SPLIT.txt) once every chunk is done. Progress goes to stdout
(append it to $CACHE/corpus/embed.log).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_corpus import sha256_file  # noqa: E402  (same folder)

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LWDEC_CACHE", Path.home() / ".cache" / "lightweight-decoder")) / "corpus"
MODEL_CANDIDATES = [
    Path.home() / ".local" / "share" / "lightweight-decoder" / "all-mpnet-base-v2",
    REPO / ".venv" / "all-mpnet-base-v2",
]


def log(msg):
    print(time.strftime("%Y-%m-%d %H:%M:%S"), msg, flush=True)


def quantize(emb):
    """Symmetric per-row int8: emb ~= i8 * scale (as shared/tools/embed.py)."""
    scale = np.abs(emb).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.rint(emb / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def atomic_savez(path, **arrays):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def atomic_save(path, arr):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".npy")
    os.close(fd)
    np.save(tmp, arr)
    os.replace(tmp, path)


def chunk_ok(path, n):
    try:
        with np.load(path) as z:
            return z["i8"].shape == (n, 768) and z["scale"].shape == (n,)
    except Exception:
        return False


def prepare(split, chunk):
    src = CACHE / f"{split}.txt"
    if not src.exists():
        sys.exit(f"{src} missing: run scripts/build_corpus.sh first")
    lines = src.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = CACHE / "emb" / split
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta = {"split": split, "source": str(src), "sha256": sha256_file(src), "rows": len(lines),
            "chunk": chunk, "model": "sentence-transformers/all-mpnet-base-v2",
            "format": "chunk-KKKKK.npz: i8 int8 (n,768), scale float32 (n,); embedding = i8 * scale"}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if old.get("sha256") != meta["sha256"] or old.get("chunk") != chunk:
            log(f"{split}: split file or chunk size changed, discarding old chunks")
            shutil.rmtree(out)
            out.mkdir(parents=True)
    fd, tmp = tempfile.mkstemp(dir=out)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, meta_path)
    return lines, out


def embed_split(model, split, chunk, batch):
    lines, out = prepare(split, chunk)
    n_chunks = (len(lines) + chunk - 1) // chunk
    todo = [k for k in range(n_chunks)
            if not chunk_ok(out / f"chunk-{k:05d}.npz", min(chunk, len(lines) - k * chunk))]
    log(f"{split}: {len(lines)} sentences, {n_chunks} chunks, {n_chunks - len(todo)} done, {len(todo)} to do")
    t0, done_rows = time.time(), 0
    for k in todo:
        part = lines[k * chunk:(k + 1) * chunk]
        order = np.argsort([len(s) for s in part], kind="stable")  # length-sorted batches pad less
        emb = np.zeros((len(part), 768), dtype=np.float32)
        tc = time.time()
        for s in range(0, len(part), batch):
            idx = order[s:s + batch]
            emb[idx] = model.encode([part[i] for i in idx], batch_size=len(idx),
                                    normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        q, scale = quantize(emb)
        atomic_savez(out / f"chunk-{k:05d}.npz", i8=q, scale=scale)
        done_rows += len(part)
        rate = done_rows / (time.time() - t0)
        left = sum(min(chunk, len(lines) - j * chunk) for j in todo if j > k)
        log(f"{split}: chunk {k + 1}/{n_chunks} ({len(part)} rows, {len(part) / (time.time() - tc):.1f}/s), "
            f"{rate:.1f} sentences/s overall, ETA {left / rate / 3600:.2f} h")
    return lines, out


def split_lines(split):
    """The sentences of $CACHE/corpus/SPLIT.txt, one per line."""
    lines = (CACHE / f"{split}.txt").read_bytes().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def load_split(split, chunk=4096):
    """(sentences, i8 [n, 768], scale [n]) of a split whose chunks are all embedded; exits
    naming the first missing chunk. Reads only: no meta.json is written."""
    lines = split_lines(split)
    emb = CACHE / "emb" / split
    i8 = np.empty((len(lines), 768), dtype=np.int8)
    scale = np.empty(len(lines), dtype=np.float32)
    for k in range((len(lines) + chunk - 1) // chunk):
        path = emb / f"chunk-{k:05d}.npz"
        n = min(chunk, len(lines) - k * chunk)
        if not chunk_ok(path, n):
            sys.exit(f"{path} missing or incomplete: run embed_corpus.py {split} first")
        with np.load(path) as z:
            i8[k * chunk:k * chunk + n] = z["i8"]
            scale[k * chunk:k * chunk + n] = z["scale"]
    return lines, i8, scale


def merge(split, chunk):
    lines, _ = prepare(split, chunk)
    _, i8, scale = load_split(split, chunk)
    atomic_save(CACHE / "emb" / f"{split}.i8.npy", i8)
    atomic_save(CACHE / "emb" / f"{split}.scale.npy", scale)
    log(f"{split}: merged {len(lines)} rows -> {CACHE / 'emb' / split}.{{i8,scale}}.npy")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("splits", nargs="+")
    ap.add_argument("--model", help="model folder (default: ~/.local/share/lightweight-decoder/"
                                    "all-mpnet-base-v2, else .venv/all-mpnet-base-v2)")
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cuda on a lent GPU")
    ap.add_argument("--merge", action="store_true", help="only merge finished chunks into SPLIT.{i8,scale}.npy")
    args = ap.parse_args()
    if args.merge:
        for split in args.splits:
            merge(split, args.chunk)
        return
    model_dir = Path(args.model) if args.model else next((p for p in MODEL_CANDIDATES if (p / "config.json").exists()), None)
    if model_dir is None or not (model_dir / "config.json").exists():
        sys.exit(f"model folder not found ({args.model or MODEL_CANDIDATES}); run bash scripts/install-encoder.sh")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(args.threads)
    model = SentenceTransformer(str(model_dir), device=args.device)
    log(f"model {model_dir}, threads {args.threads}, chunk {args.chunk}, batch {args.batch}")
    with torch.inference_mode():
        for split in args.splits:
            embed_split(model, split, args.chunk, args.batch)
    log("all splits embedded; run with --merge to concatenate")


if __name__ == "__main__":
    main()
