#!/usr/bin/env bash
# The test suite: formatting, lints, then every test (release profile: the same build as the
# demo, and the acceptance tests decode thousands of real embeddings).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
bash scripts/install-encoder.sh   # all-mpnet-base-v2 for the encoder parity test (once; no torch)
cargo fmt --all -- --check
python3 scripts/import_graph.py --strict-sizes   # no import cycle between source files; no library file over 600 lines, no CLI file over 400
cargo clippy --release --workspace --all-targets -- -D warnings   # the crate and bindings/python
RUSTDOCFLAGS="-D warnings -D missing_docs" cargo doc --no-deps --release --quiet
cargo test --release
# the leanest feature set (what a dependency without features builds): lints and unit tests
cargo clippy --release --no-default-features --lib --tests -- -D warnings
cargo test --release --no-default-features --lib
bash scripts/test-downstream.sh     # a project outside the repository depends on the packaged crate (leanest features) and decodes
bash scripts/test-kenlm.sh         # the n-gram model's queries equal KenLM's on its ARPA export
bash scripts/fuzz.sh --runs 3000    # each loader's fuzz target: its corpus, then 3000 seeded inputs
bash scripts/test-python.sh        # the Python package: the prebuilt wheel in a fresh venv without Rust, pytest
