#!/usr/bin/env python3
"""Writes tests/fixtures/generator_torch/, the fixture of tests/generator_torch_parity.rs.

Both models run on the same real inputs (the first four lines of samples/ood.txt of at most
64 bytes, with their all-mpnet-base-v2 embeddings from samples/ood.{i8,scale}.npy):
- tiny/: a small randomly initialised model (hidden 16, 2 heads, depth 3) saved by this
  script's save_checkpoint, so the Rust side also proves it reads torch-written checkpoints;
- the committed Rust checkpoint training/checkpoints/run7 (the real 722,944-parameter shape).
For each: the padded batch's logits (float32 npy [rows, width + 1, 256]), the summed loss, and
(tiny) the gradient norm of every parameter after backward of the summed loss. Then the
trainer's pieces: tiny_step1/ is the tiny model after one training step of train.py's recipe
(AdamW groups, clipping, learning rate of step 0) on those rows, which the Rust Trainer
repeats; the learning rate and depth of a schedule at chosen steps; and the FNV-1a split of
the first 300 lines of samples/ood.txt.

Usage: .venv/bin/python scripts/generator_torch/make_parity_fixture.py
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import Batch, Generator, load_checkpoint, model_config, save_checkpoint  # noqa: E402
from train import depth_at, fnv1a64, learning_rate, train_config  # noqa: E402

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


# One step on the fixture rows: batch_size 4 holds them all; no noise, no warm-up.
STEP_CONFIG = {"steps": 1, "batch_size": 4, "lr": 1e-3, "warmup_steps": 0, "grad_clip": 1.0,
               "weight_decay": 0.01, "eval_phrases": 1, "eval_decodes": 0}
SCHEDULE = {"steps": 1000, "lr": 1e-3, "min_lr_ratio": 0.1, "warmup_steps": 100,
            "decay": "cosine", "depth_schedule": [{"from_step": 0, "depth": 2},
                                                  {"from_step": 50, "depth": 3}]}


def one_step(model, texts, emb):
    """train.py's optimizer step (Run.run) on one batch of every row."""
    cfg = train_config(None, STEP_CONFIG)
    matrices = [p for p in model.parameters() if p.dim() == 2]
    norms = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": cfg["weight_decay"]},
                             {"params": norms, "weight_decay": 0.0}],
                            lr=learning_rate(cfg, 0), betas=(cfg["beta1"], cfg["beta2"]), eps=1e-8)
    model.zero_grad(set_to_none=True)
    batch = Batch([t.encode() for t in texts], emb, "cpu")
    (model.loss_sum(batch) / batch.predicted).backward()
    torch.nn.utils.clip_grad_norm_(list(model.parameters()), cfg["grad_clip"])
    opt.step()
    return cfg


def main():
    torch.manual_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    rows, texts, emb = inputs()
    # the reference values of dataset.rs's FNV-1a test
    assert (fnv1a64(b""), fnv1a64(b"a"), fnv1a64(b"foobar")) == (
        0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8)
    assert not any(fnv1a64(t.encode()) % 64 == 0 for t in texts), "a fixture row is a validation phrase"
    tiny = Generator(model_config(TINY))
    tiny.reset_parameters(seed=1)
    save_checkpoint(OUT / "tiny", tiny, train_config(None, STEP_CONFIG), 0, None, TINY)
    tiny_logits, tiny_loss, tiny_grads = run(tiny, texts, emb)
    step_cfg = one_step(tiny, texts, emb)
    save_checkpoint(OUT / "tiny_step1", tiny, step_cfg, 1, None, TINY)
    lines = (ROOT / "samples" / "ood.txt").read_text(encoding="utf-8").split("\n")[:300]
    split = [fnv1a64(t.encode()) % 64 == 0 for t in lines]
    assert any(split), "no validation phrase among the first 300 lines"
    schedule = train_config(None, SCHEDULE)
    steps = [0, 1, 49, 50, 99, 100, 101, 500, 998, 999, 1000, 5000]
    run7, _ = load_checkpoint(ROOT / "training" / "checkpoints" / "run7" / "latest.json")
    run7_logits, run7_loss, _ = run(run7, texts, emb)
    np.save(OUT / "tiny.logits.f32.npy", tiny_logits)
    np.save(OUT / "run7.logits.f32.npy", run7_logits)
    meta = {"sample": "samples/ood", "rows": rows, "texts": texts,
            "tiny": {"loss_sum": tiny_loss, "grad_norms": tiny_grads},
            "run7": {"checkpoint": "training/checkpoints/run7/latest.json", "loss_sum": run7_loss},
            "step": {"config": STEP_CONFIG, "validation_row": split.index(True)},
            "schedule": {"config": SCHEDULE,
                         "at": [[k, learning_rate(schedule, k), depth_at(schedule, k, 3)] for k in steps]},
            "validation_split": split,
            "torch": torch.__version__}
    (OUT / "parity.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"rows {rows}; tiny loss {tiny_loss:.4f}, run7 loss {run7_loss:.4f} -> {OUT}")


if __name__ == "__main__":
    main()
