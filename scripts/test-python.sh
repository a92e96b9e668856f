#!/usr/bin/env bash
# The Python package's tests: a virtual environment in target/pyenv, the pinned test
# requirements, the package built from source by `pip install ./bindings/python` (maturin; it
# shares target/ with the crate, so FAISS is not built again), then pytest against the
# bundled samples and the `lwdec` binary.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/pyenv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -r bindings/python/requirements-test.txt
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./bindings/python
cargo build --release --quiet --bin lwdec # the CLI the parity tests compare with
"$venv/bin/python" -m pytest -q bindings/python/tests
