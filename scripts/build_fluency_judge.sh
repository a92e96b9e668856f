#!/usr/bin/env bash
# Builds the evaluation's fluency judge: a word 4-gram model (another order than the
# decoders' trigram model) of the corpus's held-out ood split (perl-doc and Jane Austen,
# never trained on or banked), with the evaluated samples' own sentences left out. Decoding
# never uses it. Output: ${LWDEC_CACHE:-~/.cache/lightweight-decoder}/judge/judge.lm (and
# judge.arpa for KenLM with --arpa). Needs the corpus (bash scripts/build_corpus.sh).
#
#   bash scripts/build_fluency_judge.sh [--arpa]
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}
corpus=${LWDEC_CORPUS_DIR:-$cache/corpus}
out=$cache/judge
mkdir -p "$out"
lwdec=${LWDEC:-target/release/lwdec}
[ -x "$lwdec" ] || cargo build --release --bin lwdec
arpa=()
[ "${1:-}" = --arpa ] && arpa=(--arpa "$out/judge.arpa")
exclude=()
for s in samples/ood2.txt samples/everyday.txt samples/ood.txt; do
  [ -f "$s" ] && exclude+=(--exclude "$s")
done
"$lwdec" lm build "$corpus/ood.txt" --out "$out/judge.lm" --order 4 --max-vocabulary 60000 \
  --min-counts 1 "${exclude[@]}" "${arpa[@]}"
