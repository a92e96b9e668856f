#!/usr/bin/env bash
# The test suite: formatting, lints, then every test (release profile: the same build as the
# demo, and the acceptance tests decode thousands of real embeddings).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
