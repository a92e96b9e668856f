#!/usr/bin/env bash
# Regenerate samples/ood.{txt,i8.npy,scale.npy}: 200 real English texts unlike WordNet (100 crate
# descriptions of Cargo.lock, 100 first sentences of Python standard-library docstrings; see
# scripts/ood_texts.py), embedded with all-mpnet-base-v2. For out-of-domain evaluation only:
# never train on them or put them in a bank. Needs `cargo fetch` (the crates' sources) and the
# encoder of scripts/install-encoder.sh --python (.venv/all-mpnet-base-v2).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fetch --quiet
.venv/bin/python scripts/ood_texts.py samples/ood.txt 100
HF_HUB_OFFLINE=1 .venv/bin/python "${SHARED_TOOLS:-../shared/tools}/embed.py" \
  .venv/all-mpnet-base-v2 samples/ood.txt samples/ood
