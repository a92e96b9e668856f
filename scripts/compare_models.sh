#!/usr/bin/env bash
# Issue 16's rule for replacing the bundled generator: a candidate model against the bundled one,
# both guided by the default bank on the held-out samples (samples/ood, samples/ood2,
# samples/corpus_validation: token F1, BLEU, round-trip cosine, independent meaning), and on the
# 2,000 WordNet validation phrases with the bank of the training phrases (validation phrases
# left out, exact search): guided greedy, guided beam 8 and the model alone.
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
V=(--input samples/validation.i8.npy --scale samples/validation.scale.npy
  --reference samples/validation.txt --bank "$train_bank" --decoder generative)
echo "### samples/validation (WordNet, bank of the training phrases)"
echo "| model | decoding | token F1 | BLEU |"
echo "|---|---|---|---|"
for model in bundled candidate; do
  path=$bundled
  [[ $model == candidate ]] && path=$candidate
  for spec in "guided greedy|" "guided beam 8|--beam 8" "alone|--no-guide"; do
    label=${spec%%|*} flags=${spec#*|}
    report="$out/validation/$model ${label}.json"
    mkdir -p "$out/validation"
    if [[ ! -s $report ]]; then
      # shellcheck disable=SC2086  # flags are words
      target/release/lwdec eval "${V[@]}" --model "$path" $flags --output "$report.tmp" >/dev/null
      mv "$report.tmp" "$report"
    fi
    python3 - "$model" "$label" "$report" <<'PY'
import json, sys
model, label, path = sys.argv[1:]
d = json.load(open(path))["decoders"][0]
print(f"| {model} | {label} | {d['token_f1']:.4f} | {d['bleu']:.2f} |")
PY
  done
done
