#!/usr/bin/env python3
"""Train the generative decoder with PyTorch (a GPU when one is lent), mirroring `lwdec train`.

The Rust trainer (src/generative/train/trainer.rs) is the reference and what CI runs; this
script does the same thing minutes-fast on a GPU: the same data files and fixed split (FNV-1a
of the phrase, multiple of 64 = validation), the same TrainConfig JSON (schedule, AdamW with
decay on matrices only, clipping, depth schedule, embedding noise), length-sorted shuffled
batches, and it writes checkpoints in the Rust format (step-NNNNNNN.safetensors + .json,
latest.json) and train_log.jsonl lines that `lwdec train --resume` and `lwdec model quantize`
read. Its batches are drawn with numpy's generator, not Rust's, so a run is not bit-identical
to a Rust run; tests/generator_torch_parity.rs proves both compute the same model.

Usage:
  .venv/bin/python scripts/generator_torch/train.py --phrases P.txt --embeddings E.i8.npy \
      [--scale E.scale.npy] --resume training/checkpoints/run7/latest.json \
      --train-config CONFIG.json --out training/checkpoints/run9 [--max-len 200] \
      [--device cuda|cpu|auto] [--log-every 100]
Without --resume the model starts from the Rust initialisation's distributions (--seed).
As in Rust, the epoch and the batch within it follow from the global step (step // batches
per epoch), so a resumed run starts mid-epoch, and AdamW's moments restart at every resume.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import (DEFAULT_CONFIG, Batch, Generator, load_checkpoint, model_config,  # noqa: E402
                   save_checkpoint)

# TrainConfig::default() (src/generative/train/config.rs).
TRAIN_DEFAULTS = {
    "steps": 20000, "batch_size": 64, "lr": 2e-3, "min_lr_ratio": 0.1, "warmup_steps": 200,
    "decay": "cosine", "weight_decay": 0.01, "beta1": 0.9, "beta2": 0.98, "grad_clip": 1.0,
    "seed": 0, "depth_schedule": [], "eval_every": 500, "eval_phrases": 512, "eval_decodes": 200,
    "checkpoint_every": 1000, "noise_share": 0.0, "noise_min_cosine": 0.8,
}
MASK64 = (1 << 64) - 1


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK64
    return h


def train_config(path, fallback):
    """A TrainConfig (defaults for missing keys) with the checks of TrainConfig::validate."""
    cfg = dict(TRAIN_DEFAULTS)
    given = json.loads(Path(path).read_text()) if path else fallback
    unknown = set(given) - set(TRAIN_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown training settings: {sorted(unknown)}")
    cfg.update(given)
    ints = ("steps", "batch_size", "warmup_steps", "seed", "eval_every", "eval_phrases",
            "eval_decodes", "checkpoint_every")
    if any(not isinstance(cfg[k], int) or isinstance(cfg[k], bool) or cfg[k] < 0 for k in ints):
        raise ValueError(f"{ints} must be non-negative integers")
    if min(cfg["steps"], cfg["batch_size"], cfg["eval_every"], cfg["checkpoint_every"]) == 0:
        raise ValueError("steps, batch_size, eval_every and checkpoint_every must be positive")
    if not (math.isfinite(cfg["lr"]) and cfg["lr"] > 0):
        raise ValueError(f"lr must be finite and positive, got {cfg['lr']}")
    if cfg["decay"] not in ("cosine", "linear", "constant"):
        raise ValueError(f"decay must be cosine, linear or constant, got {cfg['decay']!r}")
    if not 0 <= cfg["min_lr_ratio"] <= 1 or not 0 <= cfg["beta1"] < 1 or not 0 <= cfg["beta2"] < 1:
        raise ValueError("min_lr_ratio must be in [0, 1], beta1 and beta2 in [0, 1)")
    if not (cfg["weight_decay"] >= 0 and cfg["grad_clip"] >= 0):
        raise ValueError("weight_decay and grad_clip must be non-negative")
    if not (0 <= cfg["noise_share"] <= 1 and 0 < cfg["noise_min_cosine"] <= 1):
        raise ValueError("noise_share must be in [0, 1] and noise_min_cosine in (0, 1]")
    stages = cfg["depth_schedule"]
    if any(st["depth"] <= 0 for st in stages) or any(
            a["from_step"] >= b["from_step"] for a, b in zip(stages, stages[1:])):
        raise ValueError("depth_schedule needs positive depths and strictly increasing steps")
    return cfg


def learning_rate(cfg, step):
    """TrainConfig::learning_rate."""
    if step < cfg["warmup_steps"]:
        return cfg["lr"] * (step + 1) / cfg["warmup_steps"]
    span = max(cfg["steps"] - cfg["warmup_steps"], 1)
    progress = min((step - cfg["warmup_steps"]) / span, 1.0)
    low = cfg["lr"] * cfg["min_lr_ratio"]
    if cfg["decay"] == "cosine":
        return low + (cfg["lr"] - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg["decay"] == "linear":
        return cfg["lr"] - (cfg["lr"] - low) * progress
    return cfg["lr"]


def depth_at(cfg, step, model_depth):
    """TrainConfig::depth."""
    for stage in reversed(cfg["depth_schedule"]):
        if stage["from_step"] <= step:
            return stage["depth"]
    return model_depth


def load_data(phrases_path, emb_path, scale_path):
    text = Path(phrases_path).read_bytes().decode("utf-8")  # no newline translation
    phrases = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if text.endswith("\n"):
        phrases.pop()  # Rust str::lines(): a final newline ends the last line
    emb = np.load(emb_path, mmap_mode="r")
    if emb.ndim != 2 or emb.shape[0] != len(phrases):
        sys.exit(f"{emb_path}: shape {emb.shape} for {len(phrases)} phrases")
    if emb.dtype == np.int8:
        if not scale_path:
            sys.exit(f"{emb_path} is int8: --scale is needed")
        scale = np.load(scale_path)
        if scale.shape != (len(phrases),) or scale.dtype != np.float32:
            sys.exit(f"{scale_path}: {scale.dtype} {scale.shape}, expected float32 ({len(phrases)},)")
        emb = torch.from_numpy(np.asarray(emb, dtype=np.float32) * scale[:, None])
    elif emb.dtype == np.float32:
        if scale_path:
            sys.exit(f"{emb_path} is float32: --scale is only for int8 embeddings")
        emb = torch.from_numpy(np.asarray(emb))
    else:
        sys.exit(f"{emb_path}: {emb.dtype} embeddings; expected float32, or int8 with --scale")
    norms = emb.norm(dim=1)
    if not torch.isfinite(norms).all() or (norms == 0).any():
        sys.exit(f"{emb_path}: a row is zero or not finite")
    return [p.encode("utf-8") for p in phrases], F.normalize(emb, dim=1)


class Run:
    def __init__(self, args):
        self.device = torch.device(
            ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
        if args.resume:
            self.model, state = load_checkpoint(args.resume, args.max_len)
            self.model_json = state["model"]
            self.step = state["step"]
            self.cfg = train_config(args.train_config, state["train"])
        else:
            self.model_json = dict(DEFAULT_CONFIG)
            if args.max_len:
                self.model_json["max_len"] = args.max_len
            self.model = Generator(model_config(self.model_json))
            self.model.reset_parameters(args.seed)
            self.step = 0
            self.cfg = train_config(args.train_config, {})
        mc = self.model.cfg
        last = self.cfg["depth_schedule"][-1]["depth"] if self.cfg["depth_schedule"] else mc["depth"]
        if last != mc["depth"]:
            sys.exit(f"the last depth stage uses depth {last}, the model uses {mc['depth']}")
        self.model.to(self.device)
        # the graph the steps run (compiled: fused elementwise ops; the parameters are shared)
        self.loss = torch.compile(self.model.loss, dynamic=True) if args.compile else self.model.loss
        self.phrases, self.emb = load_data(args.phrases, args.embeddings, args.scale)
        if self.emb.shape[1] != mc["embed_dim"]:
            sys.exit(f"embeddings have dimension {self.emb.shape[1]}, the model {mc['embed_dim']}")
        usable = [i for i, p in enumerate(self.phrases) if len(p) <= mc["max_len"] and 0 not in p]
        held_out = [fnv1a64(self.phrases[i]) % 64 == 0 for i in usable]
        val = [i for i, v in zip(usable, held_out) if v]
        self.train_rows = np.array([i for i, v in zip(usable, held_out) if not v])
        if len(self.train_rows) == 0 or not val:
            sys.exit("need training and validation phrases that fit max_len")
        n = min(max(self.cfg["eval_phrases"], 1), len(val))
        self.val_rows = [val[i * len(val) // n] for i in range(n)]
        self.lengths = np.array([len(p) for p in self.phrases])
        matrices = [p for p in self.model.parameters() if p.dim() == 2]
        norms = [p for p in self.model.parameters() if p.dim() != 2]
        betas = (self.cfg["beta1"], self.cfg["beta2"])
        self.opt = torch.optim.AdamW(
            [{"params": matrices, "weight_decay": self.cfg["weight_decay"]},
             {"params": norms, "weight_decay": 0.0}], lr=self.cfg["lr"], betas=betas, eps=1e-8)
        self.epoch = None
        self.out = Path(args.out)
        print(f"device {self.device}; {len(self.train_rows)} training rows, {len(self.val_rows)} "
              f"validation rows; step {self.step} of {self.cfg['steps']}", flush=True)

    def batches(self, epoch):
        if self.epoch is None or self.epoch[0] != epoch:
            rng = np.random.default_rng([self.cfg["seed"], epoch])
            rows = rng.permutation(self.train_rows)
            rows = rows[np.argsort(self.lengths[rows], kind="stable")]
            bs = self.cfg["batch_size"]
            chunks = [rows[i:i + bs] for i in range(0, len(rows), bs)]
            order = rng.permutation(len(chunks))
            self.epoch = (epoch, [chunks[i] for i in order])
        return self.epoch[1]

    def noisy(self, emb, generator):
        """Rows perturbed with probability noise_share to a cosine in [noise_min_cosine, 1]."""
        share, low = self.cfg["noise_share"], self.cfg["noise_min_cosine"]
        if share <= 0:
            return emb
        n = emb.shape[0]
        pick = torch.rand(n, generator=generator, device=emb.device) < share
        cosine = low + (1 - low) * torch.rand(n, generator=generator, device=emb.device)
        noise = torch.randn(emb.shape, generator=generator, device=emb.device)
        noise = F.normalize(noise - (noise * emb).sum(1, keepdim=True) * emb, dim=1)
        side = (1 - cosine ** 2).clamp_min(0).sqrt()
        out = F.normalize(cosine[:, None] * emb + side[:, None] * noise, dim=1)
        return torch.where(pick[:, None], out, emb)

    def make_batch(self, rows, generator=None):
        emb = self.emb[torch.as_tensor(rows)].to(self.device)
        if generator is not None:
            emb = self.noisy(emb, generator)
        return Batch([self.phrases[i] for i in rows], emb, self.device)

    @torch.no_grad()
    def validation_bpb(self):
        self.model.eval()
        rows = sorted(self.val_rows, key=lambda i: self.lengths[i])
        depth = depth_at(self.cfg, self.step, self.model.cfg["depth"])
        nats, count, bs = 0.0, 0, self.cfg["batch_size"]
        for s in range(0, len(rows), bs):
            batch = self.make_batch(rows[s:s + bs])
            nats += float(self.model.loss_sum(batch, depth))
            count += batch.predicted
        self.model.train()
        return nats / count / math.log(2)

    def run(self, log_every):
        self.out.mkdir(parents=True, exist_ok=True)
        log = open(self.out / "train_log.jsonl", "a")
        gen = torch.Generator(device=self.device).manual_seed(self.cfg["seed"] * 1_000_003 + self.step)
        per_epoch = len(self.batches(0))
        val_bpb = self.validation_bpb()
        if self.step == 0:
            log.write(json.dumps({"step": 0, "train_bpb": None, "val_bpb": val_bpb, "lr": 0.0,
                                  "depth": depth_at(self.cfg, 0, self.model.cfg["depth"]),
                                  "elapsed_s": 0.0, "bytes_per_s": 0.0}) + "\n")
            log.flush()
        start = time.time()
        nats, count, step_time = 0.0, 0, 0.0
        params = list(self.model.parameters())
        while self.step < self.cfg["steps"]:
            t = time.time()
            epoch, index = divmod(self.step, per_epoch)
            batch = self.make_batch(self.batches(epoch)[index], gen)
            depth = depth_at(self.cfg, self.step, self.model.cfg["depth"])
            lr = learning_rate(self.cfg, self.step)
            for group in self.opt.param_groups:
                group["lr"] = lr
            loss = self.loss(batch.embeddings, batch.inputs, batch.targets, depth)
            (loss / batch.predicted).backward()
            value = float(loss.detach())
            if not math.isfinite(value):
                sys.exit(f"training diverged at step {self.step} (loss {value}): lower the learning rate")
            if self.cfg["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(params, self.cfg["grad_clip"])
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
            nats += value
            count += batch.predicted
            step_time += time.time() - t
            done = self.step == self.cfg["steps"]
            if log_every and self.step % log_every == 0:
                print(f"step {self.step}: train {nats / count / math.log(2):.4f} bpb, "
                      f"{count / max(step_time, 1e-9):.0f} B/s", flush=True)
            if self.step % self.cfg["eval_every"] == 0 or done:
                val_bpb = self.validation_bpb()
                entry = {"step": self.step, "train_bpb": nats / max(count, 1) / math.log(2),
                         "val_bpb": val_bpb, "lr": learning_rate(self.cfg, self.step - 1),
                         "depth": depth_at(self.cfg, self.step - 1, self.model.cfg["depth"]),
                         "elapsed_s": time.time() - start,
                         "bytes_per_s": count / max(step_time, 1e-9)}
                log.write(json.dumps(entry) + "\n")
                log.flush()
                print(f"step {self.step}: val {val_bpb:.4f} bpb", flush=True)
                nats, count, step_time = 0.0, 0, 0.0
            if self.step % self.cfg["checkpoint_every"] == 0 or done:
                save_checkpoint(self.out, self.model, self.cfg, self.step, val_bpb, self.model_json)
        if self.step >= self.cfg["steps"] and not (self.out / f"step-{self.step:07d}.json").exists():
            save_checkpoint(self.out, self.model, self.cfg, self.step, val_bpb, self.model_json)
        log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phrases", required=True)
    ap.add_argument("--embeddings", required=True)
    ap.add_argument("--scale")
    ap.add_argument("--resume", help="checkpoint JSON or folder (Rust or torch)")
    ap.add_argument("--train-config", help="TrainConfig JSON (default: the checkpoint's)")
    ap.add_argument("--out", required=True, help="checkpoint folder")
    ap.add_argument("--max-len", type=int, help="override the model's max_len (no new parameters)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0, help="initialisation seed without --resume")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the loss (fused kernels, for long GPU runs; on 2 CPU cores "
                         "compiling outlasted a 40-step run, steady state unmeasured)")
    args = ap.parse_args()
    if args.max_len is not None and not 1 <= args.max_len <= 4096:
        sys.exit("--max-len must be in 1..=4096")
    try:
        run = Run(args)
    except ValueError as e:
        sys.exit(f"train.py: {e}")
    run.run(args.log_every)


if __name__ == "__main__":
    main()
