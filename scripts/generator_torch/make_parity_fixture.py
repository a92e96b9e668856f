#!/usr/bin/env python3
"""Writes tests/fixtures/generator_torch/, the fixture of tests/generator_torch_parity.rs.

Both models run on the same real inputs (the first four lines of samples/ood.txt of at most
64 bytes, with their all-mpnet-base-v2 embeddings from samples/ood.{i8,scale}.npy):
- tiny/: a small randomly initialised model (hidden 16, 2 heads, depth 3) saved by this
  script's save_checkpoint, so the Rust side also proves it reads torch-written checkpoints;
- the committed Rust checkpoint training/checkpoints/run7 (the real 722,944-parameter shape).
For each: the padded batch's logits (float32 npy [rows, width + 1, 256]), the summed loss, and
(tiny) the gradient norm of every parameter after backward of the summed loss.

Usage: .venv/bin/python scripts/generator_torch/make_parity_fixture.py
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import Batch, Generator, load_checkpoint, model_config, save_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "generator_torch"
TINY = {"embed_dim": 768, "hidden": 16, "heads": 2, "mlp": 24, "vocab": 256, "depth": 3,
        "max_len": 64, "inject_every_depth": True, "rope_theta": 10000.0, "ln_eps": 1e-5}


def inputs():
    lines = (ROOT / "samples" / "ood.txt").read_text(encoding="utf-8").split("\n")
    i8 = np.load(ROOT / "samples" / "ood.i8.npy")
    scale = np.load(ROOT / "samples" / "ood.scale.npy")
    rows = [i for i, t in enumerate(lines[:200]) if 0 < len(t.encode()) <= 64][:4]
    emb = torch.from_numpy(i8[rows].astype(np.float32) * scale[rows, None])
    return rows, [lines[i] for i in rows], emb


def run(model, texts, emb):
    batch = Batch([t.encode() for t in texts], emb, "cpu")
    logits = model.logits(batch.embeddings, batch.inputs)
    loss = model.loss_sum(batch)
    loss.backward()
    grads = {n: float(p.grad.norm()) for n, p in model.named_parameters()}
    return logits.detach().numpy().astype(np.float32), float(loss.detach()), grads


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    rows, texts, emb = inputs()
    tiny = Generator(model_config(TINY))
    tiny.reset_parameters(seed=1)
    save_checkpoint(OUT / "tiny", tiny, {"steps": 1}, 0, None, TINY)
    tiny_logits, tiny_loss, tiny_grads = run(tiny, texts, emb)
    run7, _ = load_checkpoint(ROOT / "training" / "checkpoints" / "run7" / "latest.json")
    run7_logits, run7_loss, _ = run(run7, texts, emb)
    np.save(OUT / "tiny.logits.f32.npy", tiny_logits)
    np.save(OUT / "run7.logits.f32.npy", run7_logits)
    meta = {"sample": "samples/ood", "rows": rows, "texts": texts,
            "tiny": {"loss_sum": tiny_loss, "grad_norms": tiny_grads},
            "run7": {"checkpoint": "training/checkpoints/run7/latest.json", "loss_sum": run7_loss},
            "torch": torch.__version__}
    (OUT / "parity.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"rows {rows}; tiny loss {tiny_loss:.4f}, run7 loss {run7_loss:.4f} -> {OUT}")


if __name__ == "__main__":
    main()
