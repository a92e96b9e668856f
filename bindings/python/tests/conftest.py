"""Shared fixtures: the repository's bundled samples and the `lwdec` binary built beside them."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "samples"


def load_sample(name):
    """(int8 rows, float32 scales, reference texts) of a bundled sample."""
    q = np.load(SAMPLES / f"{name}.i8.npy")
    scale = np.load(SAMPLES / f"{name}.scale.npy")
    texts = (SAMPLES / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return q, scale, texts


def dequantize(q, scale):
    """float32 rows exactly as the crate reads int8 + scale files (q as f32, times the scale)."""
    return q.astype(np.float32) * scale.astype(np.float32)[:, None]


@pytest.fixture(scope="session")
def lwdec():
    """Path of the `lwdec` binary: $LWDEC_BIN, else target/release/lwdec (built by the tests)."""
    path = Path(os.environ.get("LWDEC_BIN", REPO / "target" / "release" / "lwdec"))
    if not path.is_file():
        pytest.fail(f"{path} not found: build it with `cargo build --release` (or set LWDEC_BIN)")
    return path


def run_cli(lwdec, tmp_path, rows, *flags):
    """`lwdec decode` on float32 `rows`, as parsed JSON lines."""
    inp = tmp_path / "input.npy"
    out = tmp_path / "output.jsonl"
    np.save(inp, np.ascontiguousarray(rows, dtype=np.float32))
    subprocess.run(
        [str(lwdec), "decode", "--input", str(inp), "--output", str(out), *flags],
        check=True,
        cwd=REPO,
    )
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def bank():
    import lightweight_decoder as ld

    return ld.PhraseBankDecoder.default()


@pytest.fixture(scope="session")
def hybrid():
    import lightweight_decoder as ld

    return ld.HybridDecoder.default()
