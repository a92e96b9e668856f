#!/usr/bin/env bash
# Regenerates a default bank from the shared WordNet corpus and, unless WORDNET_ONLY=1, the broad
# corpus's train split (issue 16).
#
# Usage: scripts/build_default_bank.sh [DATA_DIR] [OUT]   (defaults ../shared/data, phrase_bank)
#
# Broad bank (the default): WordNet's 175,784 phrases first (their ids stay those of the WordNet
# bank), then the train-split sentences of scripts/build_corpus.sh with the embeddings of
# scripts/corpus/embed_corpus.py, in a 4-bit fast-scan IVF1024,PQ96x4fs index (48 bytes per
# phrase) and zstd-compressed phrases. Corpus sentences within cosine 0.98 of a phrase kept
# before them are left out (--drop-near-duplicates: the encoder barely tells them apart, and
# 4-bit codes cannot). About 5 minutes on 2 cores, 4.5 GB of memory. Every train chunk must be
# embedded; PARTIAL=1 takes the finished ones (each chunk is a uniform random sample of the
# split).
#
# The bank grows in stages when the embedding takes longer than a machine lasts (each stage
# needs only its own chunks' embeddings): the first stage is a PARTIAL=1 build, and
#   EXTEND=1 scripts/build_default_bank.sh
# adds every finished chunk that no stage holds yet (`lwdec bank extend`, with the encoder
# re-embedding the bank's phrases near a new one, so that near-duplicates across stages are
# left out too). corpus/bank_stages.json lists the chunks of each stage; a build (not
# EXTEND) starts it afresh. OUT must be phrase_bank for the stages file to be written.
# OUT/corpus_sources.json is corpus/manifest.json: every source with its licence.
#
# WORDNET_ONLY=1: the WordNet bank, IVF1024,PQ96 (96 bytes per phrase), about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
out=${2:-phrase_bank}
stages=corpus/bank_stages.json
cargo build --release --bin lwdec
if [[ "${WORDNET_ONLY:-0}" == 1 ]]; then
  target/release/lwdec bank build \
    --phrases "$data/wordnet.txt" \
    --embeddings "$data/wordnet.i8.npy" --scale "$data/wordnet.scale.npy" \
    --index IVF1024,PQ96 --train-size 65536 --nprobe 16 \
    --out "$out"
else
  cache=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}/corpus/bank
  encoder=${LWDEC_ENCODER_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/lightweight-decoder/all-mpnet-base-v2}
  if [[ "${EXTEND:-0}" == 1 ]]; then
    [[ -f $stages ]] || { echo "EXTEND=1: $stages missing (build a first stage)" >&2; exit 1; }
    .venv/bin/python scripts/corpus/bank_input.py --extend "$stages"
    target/release/lwdec bank extend --bank "$out" \
      --phrases "$cache/phrases.txt" \
      --embeddings "$cache/i8.npy" --scale "$cache/scale.npy" \
      --drop-near-duplicates 0.98 --recheck-encoder "$encoder"
  else
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
  if [[ "$out" == phrase_bank ]]; then
    append=()
    [[ "${EXTEND:-0}" == 1 ]] && append=(--append)
    .venv/bin/python scripts/corpus/bank_input.py --record-stage "$stages" --bank "$out" "${append[@]}"
  fi
  # the corpus's sources and licences travel with the bank (CC BY-SA and GFDL sources ask
  # for attribution); a save replaces the folder, so this is written after every stage
  cp corpus/manifest.json "$out/corpus_sources.json"
fi
target/release/lwdec bank info --bank "$out" --verify
