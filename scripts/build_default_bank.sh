#!/usr/bin/env bash
# Regenerates the bundled default bank phrase_bank/ from the shared WordNet corpus: every one of
# its 175,784 phrases, embedded with all-mpnet-base-v2, in an IVF1024,PQ96 index (96 bytes per
# phrase). Usage: scripts/build_default_bank.sh [DATA_DIR]   (default ../shared/data)
# Takes about 10 minutes on 2 cores (FAISS k-means and PQ training dominate).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
cargo run --release --bin lwdec -- bank build \
  --phrases "$data/wordnet.txt" \
  --embeddings "$data/wordnet.i8.npy" --scale "$data/wordnet.scale.npy" \
  --index IVF1024,PQ96 --train-size 65536 --nprobe 16 \
  --out phrase_bank
cargo run --release --bin lwdec -- bank info --verify
