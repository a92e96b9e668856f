"""Shared fixtures: the repository's bundled samples and the `lwdec` binary built beside them.

The tests read a few files of the repository (samples, a config, the bank's manifest):
from this checkout, or from `$LWDEC_TEST_ROOT`, a folder holding copies of them at the same
relative paths (`scripts/test-python.sh` runs the tests against the installed wheel that way,
with nothing of the repository on `sys.path`).
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

REPO = Path(os.environ.get("LWDEC_TEST_ROOT") or Path(__file__).resolve().parents[3])
SAMPLES = REPO / "samples"
EXAMPLES = REPO / "bindings" / "python" / "examples"


def _encoder_dir():
    import lightweight_decoder as ld

    return ld.MpnetEncoder.default_path()


# The encoder's weights are not in the package (`bash scripts/install-encoder.sh` installs
# them): the tests that need them are skipped without them, unless $LWDEC_REQUIRE_ENCODER is
# set (the test command sets it), which makes their absence an error.
ENCODER_DIR = _encoder_dir()
ENCODER_INSTALLED = all((ENCODER_DIR / f).is_file() for f in ("config.json", "tokenizer.json"))
if not ENCODER_INSTALLED and os.environ.get("LWDEC_REQUIRE_ENCODER"):
    raise RuntimeError(f"the encoder is not installed at {ENCODER_DIR}: "
                       "run bash scripts/install-encoder.sh")
requires_encoder = pytest.mark.skipif(
    not ENCODER_INSTALLED,
    reason=f"the encoder all-mpnet-base-v2 is not installed at {ENCODER_DIR} "
           "(bash scripts/install-encoder.sh installs it)",
)


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


def f32_tree(value):
    """`value` (parsed JSON) with every float rounded to float32: the crate's numbers are f32,
    which `lwdec` prints as the shortest decimal that reads back as that f32 and `to_dict` as
    the f32's exact value; both read back as the same float32."""
    if isinstance(value, float):
        return np.float32(value)
    if isinstance(value, dict):
        return {k: f32_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [f32_tree(v) for v in value]
    return value


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
