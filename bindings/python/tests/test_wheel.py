"""Against the installed wheel (`scripts/test-python.sh` sets $LWDEC_CHECKOUT): the package is
the wheel's, self-contained, and nothing of the repository is importable."""

import os
import shutil
import sys
from pathlib import Path

import pytest

import lightweight_decoder as ld

CHECKOUT = os.environ.get("LWDEC_CHECKOUT")
pytestmark = pytest.mark.skipif(
    not CHECKOUT, reason="checks the installed wheel: run by scripts/test-python.sh")


def test_the_package_is_the_installed_wheel():
    checkout = Path(CHECKOUT).resolve()
    package = Path(ld.__file__).resolve().parent
    assert Path(sys.prefix).resolve() in package.parents, package
    for entry in filter(None, sys.path):
        path = Path(entry).resolve()
        assert path != checkout and checkout not in path.parents, f"{entry} is on sys.path"
    assert Path(ld._native.__file__).name == "_native.abi3.so"


def test_the_wheel_is_self_contained():
    package = Path(ld.__file__).resolve().parent
    libs = sorted(p.name for p in (package.parent / "lightweight_decoder.libs").iterdir())
    assert any(n.startswith("libopenblas") for n in libs), libs
    assert any(n.startswith("libgomp") for n in libs), libs
    data = sorted(p for p in ld.BUNDLED_DATA.rglob("*") if p.is_file())
    assert {p.name for p in data} >= {"index.faiss", "phrases.txt.zst", "manifest.json",
                                      "generative.q4.gguf"}
    assert not any(p.is_symlink() for p in data)
    for tool in ("cargo", "rustc", "cmake"):
        assert shutil.which(tool) is None, f"{tool} is on PATH"
