#!/usr/bin/env bash
# Rebuilds model/english.lm, the decoders' model of English (a word trigram model with
# interpolated modified Kneser-Ney smoothing, `lwdec lm build`), from the default bank's own
# phrases: the 175,784 WordNet phrases and the broad corpus's train split as banked
# (phrase_bank/phrases.txt.zst), so it knows exactly the text the decoders can copy from and
# nothing held out. Pruning (bigrams and trigrams seen once) and the vocabulary cap keep the
# file at a few MB.
#
#   bash scripts/build_language_model.sh [OUT]     # default model/english.lm
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-model/english.lm}
lwdec=${LWDEC:-target/release/lwdec}
[ -x "$lwdec" ] || cargo build --release --bin lwdec
"$lwdec" lm build phrase_bank/phrases.txt.zst --out "$out" --order 3 \
  --max-vocabulary "${MAX_VOCABULARY:-100000}" --min-counts "${MIN_COUNTS:-1,2,2}"
