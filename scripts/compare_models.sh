#!/usr/bin/env bash
# Issue 16's rule for replacing the bundled generator: a candidate model against the bundled one,
# both guided by the default bank on the held-out samples (samples/ood, samples/ood2,
# samples/corpus_validation: token F1, BLEU, round-trip cosine, independent meaning), and on the
# 2,000 WordNet validation phrases with the bank of the training phrases (validation phrases
# left out, exact search): guided greedy, guided beam 8 and the model alone. Every row comes
# from scripts/sweep_refine.sh (token F1, BLEU, round-trip cosine, independent meaning).
#
#   bash scripts/compare_models.sh CANDIDATE.gguf [OUT]   (OUT default target/compare_models)
#
# Outputs are reused when present (delete OUT to rerun). Needs target/release/lwdec, the .venv
# of scripts/install-encoder.sh --python and ../shared/data (or $SHARED) for the training bank.
set -euo pipefail
cd "$(dirname "$0")/.."
candidate=${1:?usage: compare_models.sh CANDIDATE.gguf [OUT]}
out=${2:-target/compare_models}
bundled=model/generative.q4.gguf
shared=${SHARED:-../shared/data}
train_bank=target/eval/train_bank_flat
mkdir -p "$out"
for sample in ood ood2 corpus_validation; do
  echo "### samples/$sample"
  bash scripts/sweep_refine.sh "samples/$sample" "$out/$sample" \
    "bundled, guided|--decoder generative --model $bundled" \
    "candidate, guided|--decoder generative --model $candidate" \
    "bundled, alone|--decoder generative --no-guide --model $bundled" \
    "candidate, alone|--decoder generative --no-guide --model $candidate"
done
if [[ ! -f $train_bank/manifest.json ]]; then
  target/release/lwdec bank build --phrases "$shared/wordnet.txt" \
    --embeddings "$shared/wordnet.i8.npy" --scale "$shared/wordnet.scale.npy" \
    --index Flat --exclude-validation --out "$train_bank" >/dev/null
fi
echo "### samples/validation (WordNet, bank of the training phrases)"
V="--decoder generative --bank $train_bank"
bash scripts/sweep_refine.sh samples/validation "$out/validation" \
  "bundled, guided greedy|$V --model $bundled" \
  "bundled, guided beam 8|$V --model $bundled --beam 8" \
  "bundled, alone|$V --model $bundled --no-guide" \
  "candidate, guided greedy|$V --model $candidate" \
  "candidate, guided beam 8|$V --model $candidate --beam 8" \
  "candidate, alone|$V --model $candidate --no-guide"
