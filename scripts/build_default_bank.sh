#!/usr/bin/env bash
# Regenerates a default bank from the shared WordNet corpus and, unless WORDNET_ONLY=1, the broad
# corpus's train split (issue 16).
#
# Usage: scripts/build_default_bank.sh [DATA_DIR] [OUT]   (defaults ../shared/data, phrase_bank)
#
# Broad bank (the default): WordNet's 175,784 phrases first (their ids stay those of the WordNet
# bank), then every train-split sentence of scripts/build_corpus.sh with the embeddings of
# scripts/corpus/embed_corpus.py (all chunks must be done; PARTIAL=1 takes the finished ones, for
# measurements), in a 4-bit fast-scan IVF1024,PQ96x4fs index (48 bytes per phrase) and
# zstd-compressed phrases. Corpus sentences within cosine 0.98 of a phrase kept before them are
# left out (--drop-near-duplicates: the encoder barely tells them apart, and 4-bit codes cannot).
# About 5 minutes on 2 cores, 4.5 GB of memory.
#
# WORDNET_ONLY=1: the WordNet bank, IVF1024,PQ96 (96 bytes per phrase), about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
out=${2:-phrase_bank}
cargo build --release --bin lwdec
if [[ "${WORDNET_ONLY:-0}" == 1 ]]; then
  target/release/lwdec bank build \
    --phrases "$data/wordnet.txt" \
    --embeddings "$data/wordnet.i8.npy" --scale "$data/wordnet.scale.npy" \
    --index IVF1024,PQ96 --train-size 65536 --nprobe 16 \
    --out "$out"
else
  cache=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}/corpus/bank
  partial=()
  [[ "${PARTIAL:-0}" == 1 ]] && partial=(--partial)
  .venv/bin/python scripts/corpus/bank_input.py --data "$data" "${partial[@]}"
  wordnet_rows=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['wordnet_rows'])" "$cache/meta.json")
  target/release/lwdec bank build \
    --phrases "$cache/phrases.txt" \
    --embeddings "$cache/i8.npy" --scale "$cache/scale.npy" \
    --index IVF1024,PQ96x4fs --train-size 131072 --nprobe 16 \
    --drop-near-duplicates 0.98 --keep-first "$wordnet_rows" \
    --out "$out"
fi
target/release/lwdec bank info --bank "$out" --verify
