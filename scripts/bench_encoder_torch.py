#!/usr/bin/env python3
"""Sentences per second of PyTorch sentence-transformers all-mpnet-base-v2 on CPU.

Prints one JSON object on stdout:
  {"modes": {"f32": {"batch1": s_per_s, "batch64": s_per_s, "seconds": {...}},
             "bf16": {..., "cosine_to_f32": {"mean": m, "min": m}}},
   "sentences": N, "threads": T, "torch": version, "sentence_transformers": version}
(one "batchB" key per batch size and mode; "bf16" is `torch.autocast("cpu", torch.bfloat16)`,
PyTorch's fastest CPU mode where the CPU has AVX512-BF16). `lwdec bench --encoder` runs this
on the same sentences as the Rust encoder and reads the JSON.

Usage:
  HF_HUB_OFFLINE=1 .venv/bin/python scripts/bench_encoder_torch.py \
      [--model DIR] [--threads 2] [--texts FILE] [--n N] [--batches 1,64] [--batch1-n N]
      [--modes f32,bf16] [--out E.npy]
  (legacy: bench_encoder_torch.py [MODEL_DIR] [THREADS] [N])

--texts: one sentence per line (default: all 200 lines of samples/ood.txt, the first 1,000 of
samples/validation.txt and the first 800 of samples/wordnet_sample.txt). --out: save the
float32 embeddings of the last batch size as .npy (the parity reference), written atomically.
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODEL = os.path.join(
    os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"),
    "lightweight-decoder",
    "all-mpnet-base-v2",
)


def lines(path, n=None):
    with open(path, encoding="utf-8") as f:
        out = [line.rstrip("\n").rstrip("\r") for line in f]
    return out if n is None else out[:n]


def default_sentences():
    s = os.path.join(ROOT, "samples")
    return (
        lines(os.path.join(s, "ood.txt"), 200)
        + lines(os.path.join(s, "validation.txt"), 1000)
        + lines(os.path.join(s, "wordnet_sample.txt"), 800)
    )


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("legacy", nargs="*", help="MODEL_DIR THREADS N (old positional form)")
    p.add_argument("--model", help="sentence-transformers model folder")
    p.add_argument("--threads", type=int, help="torch threads (default 2)")
    p.add_argument("--texts", help="sentences, one per line")
    p.add_argument("--n", type=int, help="time the first N sentences only")
    p.add_argument("--batches", default="1,64", help="comma-separated batch sizes")
    p.add_argument("--batch1-n", type=int, help="time batch 1 on the first N sentences only")
    p.add_argument("--modes", default="f32", help="comma-separated: f32, bf16 (autocast)")
    p.add_argument("--out", help="write the embeddings of the last batch size here (.npy)")
    a = p.parse_args()
    legacy = a.legacy + [None] * (3 - len(a.legacy))
    a.model = a.model or legacy[0] or os.environ.get("LWDEC_ENCODER_DIR") or DEFAULT_MODEL
    if not os.path.isdir(a.model):
        venv = os.path.join(ROOT, ".venv", "all-mpnet-base-v2")
        a.model = venv if os.path.isdir(venv) else a.model
    a.threads = a.threads or int(legacy[1] or 2)
    a.n = a.n or (int(legacy[2]) if legacy[2] else None)
    a.batches = [int(b) for b in a.batches.split(",") if b]
    a.modes = [m for m in a.modes.split(",") if m]
    for m in a.modes:
        if m not in ("f32", "bf16"):
            p.error(f"unknown mode {m} (f32, bf16)")
    return a


def main():
    a = parse()
    import numpy as np
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    sents = lines(a.texts) if a.texts else default_sentences()
    if a.n:
        sents = sents[: a.n]
    model = SentenceTransformer(a.model, device="cpu")
    out = {
        "sentences": len(sents),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "modes": {},
    }
    rows = {}

    def encode(texts, batch, mode):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            e = model.encode(texts, batch_size=batch, normalize_embeddings=True,
                             convert_to_tensor=True)
        return e.float().numpy()

    with torch.inference_mode():
        for mode in a.modes:
            res = out["modes"][mode] = {"seconds": {}}
            for batch in a.batches:
                warm = 8 if batch == 1 else 64  # as lwdec bench --encoder
                encode(sents[:warm], batch, mode)
                timed = sents[: a.batch1_n] if batch == 1 and a.batch1_n else sents
                t = time.perf_counter()
                emb = encode(timed, batch, mode)
                s = time.perf_counter() - t
                assert emb.shape == (len(timed), 768)
                print(f"torch {mode} batch {batch}: {s:.1f} s, {len(timed) / s:.1f} sentences/s",
                      file=sys.stderr)
                res[f"batch{batch}"] = round(len(timed) / s, 2)
                res["seconds"][f"batch{batch}"] = round(s, 2)
                rows[mode] = emb
    if "f32" in rows and "bf16" in rows and rows["f32"].shape == rows["bf16"].shape:
        cos = (rows["f32"] * rows["bf16"]).sum(1)
        out["modes"]["bf16"]["cosine_to_f32"] = {"mean": float(cos.mean()), "min": float(cos.min())}
    if a.out and "f32" in rows:
        tmp = a.out + ".tmp-%d.npy" % os.getpid()
        np.save(tmp, np.asarray(rows["f32"], dtype=np.float32))
        os.replace(tmp, a.out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
