#!/usr/bin/env python3
"""Embed a corpus split with all-mpnet-base-v2, resumably, in chunks cached outside the repo.

Usage (with the encoder of scripts/install-encoder.sh):
  HF_HUB_OFFLINE=1 .venv/bin/python scripts/corpus/embed_corpus.py SPLIT [SPLIT ...]
        [--model DIR] [--chunk 4096] [--batch 64] [--threads 2] [--dtype fp32|bf16]
        [--skip-staged corpus/bank_stages.json] [--merge]

SPLIT is validation, ood, train (files $CACHE/corpus/SPLIT.txt of
scripts/corpus/build_corpus.py; CACHE=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}).
Chunk k holds the rows order[k*chunk : (k+1)*chunk] of the split, where order is a fixed
seeded permutation of its line numbers (ROW_ORDER_SEED), so every set of finished chunks is
a uniform random sample of the split (the split files are sorted: a prefix would be biased).
It goes to $CACHE/corpus/emb/SPLIT/chunk-KKKKK.npz (arrays rows: int64 line numbers,
i8: int8 (n, 768), scale: float32 (n,), embedding = i8 * scale, the convention of
shared/data), written atomically (temp file + rename). Chunks already present (and of the
right rows) are skipped, so a killed run resumes where it stopped; a new machine
regenerates them. The split file's sha256 is recorded in emb/SPLIT/meta.json: if the split
changes, the old chunks are discarded.

--dtype bf16 runs the encoder under CPU bfloat16 autocast (fp32 accumulation): 2.8x the
sentences per second of fp32 on an AVX512-BF16 CPU, at cosine >= 0.9999 with the fp32
embeddings (docs/experiments.md, session 18); only on CPUs with native bf16
(avx512_bf16 / amx_bf16), else it is slower than fp32.
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


ROW_ORDER_SEED = 16  # issue 16


def row_order(n):
    """The fixed permutation of a split's n line numbers that chunks are cut from."""
    return np.random.default_rng(ROW_ORDER_SEED).permutation(n)


def chunk_rows(order, chunk, k):
    """Line numbers of chunk k (in the permuted order)."""
    return order[k * chunk:(k + 1) * chunk]


def chunk_ok(path, rows):
    """Whether the chunk file at path is complete and holds exactly these line numbers."""
    n = len(rows)
    try:
        with np.load(path) as z:
            return (z["i8"].shape == (n, 768) and z["scale"].shape == (n,)
                    and np.array_equal(z["rows"], rows))
    except Exception:
        return False


def staged_chunks(stages_path, train_sha256=None):
    """Train chunk numbers that the bank's stages hold (corpus/bank_stages.json,
    scripts/build_default_bank.sh); with train_sha256, exits unless the stages are of that
    train split."""
    stages = json.loads(Path(stages_path).read_text())["stages"]
    if train_sha256 and any(s["train_sha256"] != train_sha256 for s in stages):
        sys.exit(f"{stages_path}: the bank's stages are of another train split; rebuild the "
                 "bank in one stage (scripts/build_default_bank.sh without EXTEND)")
    return {k for stage in stages for k in stage["train_chunks"]}


def finished_chunks(split, lines, chunk=4096):
    """(k, rows) of every finished chunk of a split, in chunk order."""
    emb = CACHE / "emb" / split
    order = row_order(len(lines))
    n_chunks = (len(lines) + chunk - 1) // chunk
    return [(k, chunk_rows(order, chunk, k)) for k in range(n_chunks)
            if chunk_ok(emb / f"chunk-{k:05d}.npz", chunk_rows(order, chunk, k))]


def prepare(split, chunk):
    src = CACHE / f"{split}.txt"
    if not src.exists():
        sys.exit(f"{src} missing: run scripts/build_corpus.sh first")
    lines = split_lines(split)
    out = CACHE / "emb" / split
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta = {"split": split, "source": str(src), "sha256": sha256_file(src), "rows": len(lines),
            "chunk": chunk, "row_order_seed": ROW_ORDER_SEED,
            "model": "sentence-transformers/all-mpnet-base-v2",
            "format": "chunk-KKKKK.npz: rows int64 (n,) line numbers, i8 int8 (n,768), "
                      "scale float32 (n,); embedding = i8 * scale"}
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        if (old.get("sha256") != meta["sha256"] or old.get("chunk") != chunk
                or old.get("row_order_seed") != ROW_ORDER_SEED):
            log(f"{split}: split file or chunk size changed, discarding old chunks")
            shutil.rmtree(out)
            out.mkdir(parents=True)
    fd, tmp = tempfile.mkstemp(dir=out)
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, meta_path)
    return lines, out


def embed_split(model, split, chunk, batch, dtype, skip=()):
    import torch
    lines, out = prepare(split, chunk)
    order = row_order(len(lines))
    n_chunks = (len(lines) + chunk - 1) // chunk
    todo = [k for k in range(n_chunks) if k not in skip
            and not chunk_ok(out / f"chunk-{k:05d}.npz", chunk_rows(order, chunk, k))]
    log(f"{split}: {len(lines)} sentences, {n_chunks} chunks, {n_chunks - len(todo)} done, {len(todo)} to do")
    t0, done_rows = time.time(), 0
    for k in todo:
        rows = chunk_rows(order, chunk, k)
        part = [lines[r] for r in rows]
        emb = np.zeros((len(part), 768), dtype=np.float32)
        tc = time.time()
        by_len = np.argsort([len(s) for s in part], kind="stable")  # length-sorted batches pad less
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            for s in range(0, len(part), batch):
                idx = by_len[s:s + batch]
                out_rows = model.encode([part[i] for i in idx], batch_size=len(idx),
                                        normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False)
                emb[idx] = np.asarray(out_rows, dtype=np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)  # unit norm in float32
        q, scale = quantize(emb)
        atomic_savez(out / f"chunk-{k:05d}.npz", rows=rows.astype(np.int64), i8=q, scale=scale,
                     dtype=np.array(dtype))
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
    order = row_order(len(lines))
    for k in range((len(lines) + chunk - 1) // chunk):
        path = emb / f"chunk-{k:05d}.npz"
        rows = chunk_rows(order, chunk, k)
        if not chunk_ok(path, rows):
            sys.exit(f"{path} missing or incomplete: run embed_corpus.py {split} first")
        with np.load(path) as z:
            i8[rows] = z["i8"]
            scale[rows] = z["scale"]
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
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: CPU bfloat16 autocast, for CPUs with native bf16 (see above)")
    ap.add_argument("--skip-staged", metavar="STAGES",
                    help="train: leave out the chunks that the bank's stages hold "
                         "(corpus/bank_stages.json), for growing the bank on a new machine")
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
    log(f"model {model_dir}, threads {args.threads}, chunk {args.chunk}, batch {args.batch}, "
        f"dtype {args.dtype}")
    with torch.inference_mode():
        for split in args.splits:
            skip = staged_chunks(args.skip_staged) if args.skip_staged and split == "train" else set()
            embed_split(model, split, args.chunk, args.batch, args.dtype, skip)
    log("all splits embedded; run with --merge to concatenate")


if __name__ == "__main__":
    main()
