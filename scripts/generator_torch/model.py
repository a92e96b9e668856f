"""PyTorch mirror of the generative decoder (src/generative/model.rs), for training on a GPU.

The Rust model is the reference: same parameter names and shapes (so the safetensors files
are interchangeable), same forward pass (byte embedding scaled by sqrt(hidden), layer-normed
bridge prefix added at every depth iteration, one shared pre-norm layer with "rotate half"
RoPE, tanh GELU, final norm, tied output projection). `make_parity_fixture.py` writes the
fixture that `tests/generator_torch_parity.rs` checks the Rust model against.
"""
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load, save
from torch import nn

# Order of src/generative/model.rs PARAM_NAMES.
PARAM_NAMES = [
    "bridge.weight", "bridge_norm.weight", "bridge_norm.bias", "embed.weight",
    "layer.attn_norm.weight", "layer.attn_norm.bias", "layer.qkv.weight", "layer.out.weight",
    "layer.mlp_norm.weight", "layer.mlp_norm.bias", "layer.up.weight", "layer.down.weight",
    "final_norm.weight", "final_norm.bias",
]

# GenerativeConfig::default() (src/generative/config.rs).
DEFAULT_CONFIG = {
    "embed_dim": 768, "hidden": 256, "heads": 2, "mlp": 384, "vocab": 256, "depth": 4,
    "max_len": 128, "inject_every_depth": True, "rope_theta": 10000.0, "ln_eps": 1e-5,
}


def model_config(stored):
    """The architecture of a checkpoint's "model" object, with defaults for missing keys and
    the checks of GenerativeConfig::validate (unknown keys are errors, as in Rust)."""
    unknown = set(stored) - set(DEFAULT_CONFIG) - {"max_draft"}
    if unknown:
        raise ValueError(f"unknown model settings: {sorted(unknown)}")
    if stored.get("max_draft", 0) != 0:
        raise ValueError("max_draft is no longer supported (must be 0)")
    cfg = dict(DEFAULT_CONFIG)
    cfg.update({k: v for k, v in stored.items() if k in DEFAULT_CONFIG})
    sizes = ("embed_dim", "hidden", "heads", "mlp", "depth", "max_len")
    if any(not isinstance(cfg[k], int) or cfg[k] <= 0 for k in sizes):
        raise ValueError(f"{sizes} must be positive integers: {cfg}")
    h, heads = cfg["hidden"], cfg["heads"]
    if cfg["vocab"] != 256 or h % heads or (h // heads) % 2:
        raise ValueError(f"vocab must be 256 and hidden split into heads of even size: {cfg}")
    if cfg["max_len"] > 4096 or cfg["depth"] > 64 or not cfg["rope_theta"] > 1 or not cfg["ln_eps"] > 0:
        raise ValueError(f"max_len, depth, rope_theta or ln_eps out of range: {cfg}")
    return cfg


def rope_tables(head_dim, positions, theta):
    """cos, sin [positions, head_dim], "rotate half" layout, computed in float64 like rope.rs."""
    half = head_dim // 2
    p = torch.arange(positions, dtype=torch.float64)[:, None]
    inv = float(theta) ** (-2.0 * torch.arange(half, dtype=torch.float64) / head_dim)
    angles = p * inv[None, :]
    cos = torch.cat([angles.cos(), angles.cos()], dim=1).float()
    sin = torch.cat([angles.sin(), angles.sin()], dim=1).float()
    return cos, sin


class _Layer(nn.Module):
    def __init__(self, h, mlp, eps):
        super().__init__()
        self.attn_norm = nn.LayerNorm(h, eps=eps)
        self.qkv = nn.Linear(h, 3 * h, bias=False)
        self.out = nn.Linear(h, h, bias=False)
        self.mlp_norm = nn.LayerNorm(h, eps=eps)
        self.up = nn.Linear(h, mlp, bias=False)
        self.down = nn.Linear(mlp, h, bias=False)


class Generator(nn.Module):
    """The generative model; `state_dict()` keys are exactly PARAM_NAMES."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        h, eps = cfg["hidden"], cfg["ln_eps"]
        self.bridge = nn.Linear(cfg["embed_dim"], h, bias=False)
        self.bridge_norm = nn.LayerNorm(h, eps=eps)
        self.embed = nn.Embedding(cfg["vocab"], h)
        self.layer = _Layer(h, cfg["mlp"], eps)
        self.final_norm = nn.LayerNorm(h, eps=eps)
        cos, sin = rope_tables(h // cfg["heads"], 1 + cfg["max_len"], cfg["rope_theta"])
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self, seed=0):
        """The Rust initialisation's distributions (not its random stream)."""
        g = torch.Generator().manual_seed(seed)
        depth, h = self.cfg["depth"], self.cfg["hidden"]
        residual = 1.0 / math.sqrt(2.0 * depth)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name.endswith("norm.bias"):
                    p.zero_()
                else:
                    fan_in = p.shape[1]
                    std = {"layer.out.weight": residual / math.sqrt(fan_in),
                           "layer.down.weight": residual / math.sqrt(fan_in),
                           "embed.weight": 1.0 / math.sqrt(h)}.get(name, 1.0 / math.sqrt(fan_in))
                    p.copy_(torch.randn(p.shape, generator=g) * std)

    def _rope(self, x):
        L, half = x.shape[2], x.shape[3] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * self.rope_cos[:L] + rotated * self.rope_sin[:L]

    def hidden(self, embeddings, inputs, depth=None):
        """Final hidden states [rows, width + 1, hidden] (after the final norm)."""
        cfg = self.cfg
        depth = cfg["depth"] if depth is None else depth
        rows, width = inputs.shape
        L, h, heads = width + 1, cfg["hidden"], cfg["heads"]
        hd = h // heads
        prefix = self.bridge_norm(self.bridge(embeddings)).unsqueeze(1)
        x = torch.cat([prefix, self.embed(inputs) * math.sqrt(h)], dim=1)
        lay = self.layer
        for _ in range(depth):
            if cfg["inject_every_depth"]:
                x = x + prefix
            qkv = lay.qkv(lay.attn_norm(x)).reshape(rows, L, 3, heads, hd).permute(2, 0, 3, 1, 4)
            q, k, v = self._rope(qkv[0]), self._rope(qkv[1]), qkv[2]
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + lay.out(y.transpose(1, 2).reshape(rows, L, h))
            x = x + lay.down(F.gelu(lay.up(lay.mlp_norm(x)), approximate="tanh"))
        return self.final_norm(x)

    def logits(self, embeddings, inputs, depth=None):
        """[rows, width + 1, 256]: position t predicts byte t + 1 (or the end byte 0)."""
        return self.hidden(embeddings, inputs, depth) @ self.embed.weight.t()

    def loss(self, embeddings, inputs, targets, depth=None):
        """Summed cross-entropy (nats) over the targets (-100 = none), as
        GenerativeModel::loss_sum."""
        logits = self.logits(embeddings, inputs, depth)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=-100, reduction="sum")

    def loss_sum(self, batch, depth=None):
        """Summed cross-entropy (nats) over every predicted byte of a Batch."""
        return self.loss(batch.embeddings, batch.inputs, batch.targets, depth)


class Batch:
    """Padded batch as model.rs Batch::new: inputs = bytes padded with 0, one target per text
    byte plus the end byte 0; padded positions carry no target (-100)."""

    def __init__(self, phrases, embeddings, device):
        width = max(len(p) for p in phrases)
        inputs = torch.zeros(len(phrases), width, dtype=torch.long)
        targets = torch.full((len(phrases), width + 1), -100, dtype=torch.long)
        for r, p in enumerate(phrases):
            if 0 in p:
                raise ValueError("phrase contains byte 0, which is reserved for the end of text")
            row = torch.tensor(list(p), dtype=torch.long)
            inputs[r, :len(p)] = row
            targets[r, :len(p)] = row
            targets[r, len(p)] = 0
        self.inputs = inputs.to(device)
        self.targets = targets.to(device)
        self.embeddings = F.normalize(embeddings.float(), dim=1).to(device)
        self.predicted = sum(len(p) + 1 for p in phrases)


def _atomic_write(path, data):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_checkpoint(out_dir, model, train_config, step, val_bpb, model_config_json):
    """Writes step-NNNNNNN.safetensors + .json and latest.json in the Rust Checkpoint format."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"step-{step:07d}"
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    data = save(state)
    _atomic_write(out_dir / f"{stem}.safetensors", data)
    meta = {"step": step, "model": model_config_json, "train": train_config,
            "weights": f"{stem}.safetensors", "weights_sha256": hashlib.sha256(data).hexdigest(),
            "val_bpb": val_bpb}
    text = json.dumps(meta, indent=2).encode()
    _atomic_write(out_dir / f"{stem}.json", text)
    _atomic_write(out_dir / "latest.json", text)
    return out_dir / f"{stem}.json"


def load_checkpoint(path, max_len=None):
    """(model, state) from a Rust or torch checkpoint (a step JSON, latest.json or its folder),
    verifying the weights' checksum; `max_len` overrides the stored one (RoPE has no learned
    positions, so it changes no parameter)."""
    path = Path(path)
    if path.is_dir():
        path = path / "latest.json"
    state = json.loads(path.read_text())
    data = (path.parent / state["weights"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != state["weights_sha256"]:
        raise ValueError(f"{path.parent / state['weights']}: checksum mismatch")
    stored = dict(state["model"])
    if max_len is not None:
        stored["max_len"] = max_len
    state["model"] = stored
    model = Generator(model_config(stored))
    tensors = load(data)
    if sorted(tensors) != sorted(PARAM_NAMES):
        raise ValueError(f"{path}: tensors {sorted(tensors)} are not the model's parameters")
    if any(t.dtype != torch.float32 for t in tensors.values()):
        raise ValueError(f"{path}: every tensor must be float32")
    model.load_state_dict(tensors)
    return model, state
