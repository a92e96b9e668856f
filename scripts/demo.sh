#!/usr/bin/env bash
# The main job: decode the bundled sample embeddings with the bundled bank and show original
# and decoded text side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
cargo run --release --bin lwdec -- demo "$@"
