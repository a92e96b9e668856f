#!/usr/bin/env bash
# Refits the hybrid's rule for a broad bank (issue 16) under both calibration objectives and
# compares the rules on the three held-out samples (token F1, BLEU, round-trip, independent
# meaning), beside the bank and the generator alone.
#
#   bash scripts/calibrate_broad_hybrid.sh [BANK] [MODEL]   (phrase_bank, model/generative.q4.gguf)
#
# Calibration rows: scripts/corpus/make_calibration_set.py (400 corpus validation sentences not
# in the reported samples), each clean and at cosine 0.9 and 0.8. Rules go to
# docs/hybrid_broad_{token_f1,round_trip}_config.json (kept when present: delete to refit);
# eval outputs to $OUT (default target/broad_hybrid), reused when present. The round-trip fit
# re-embeds up to 7 texts per row (20 rows took 8.8 s on 2 cores, so ~9 minutes for 1,200).
set -euo pipefail
cd "$(dirname "$0")/.."
bank=${1:-phrase_bank}
model=${2:-model/generative.q4.gguf}
cal=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}/corpus/calibration
out=${OUT:-target/broad_hybrid}
mkdir -p "$out"
cargo build --release --bin lwdec
[[ -f $cal/input.i8.npy ]] || .venv/bin/python scripts/corpus/make_calibration_set.py
for objective in token-f1 round-trip; do
  config=docs/hybrid_broad_${objective//-/_}_config.json
  if [[ ! -f $config ]]; then
    target/release/lwdec calibrate --input "$cal/input.i8.npy" --scale "$cal/input.scale.npy" \
      --reference "$cal/reference.txt" --noise-cosine 1,0.9,0.8 \
      --bank "$bank" --model "$model" --objective "$objective" --out "$config" \
      | tee "$out/calibration_${objective}.json"
  fi
done
for sample in ood ood2 corpus_validation; do
  echo "### samples/$sample"
  bash scripts/sweep_refine.sh "samples/$sample" "$out/$sample" \
    "bank|--decoder phrase-bank --bank $bank" \
    "generator|--decoder generative --bank $bank --model $model" \
    "hybrid (default rule)|--decoder hybrid --bank $bank --model $model" \
    "hybrid (token-F1 rule)|--decoder hybrid --bank $bank --model $model --config docs/hybrid_broad_token_f1_config.json" \
    "hybrid (round-trip rule)|--decoder hybrid --bank $bank --model $model --config docs/hybrid_broad_round_trip_config.json"
done
