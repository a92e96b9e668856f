#!/usr/bin/env bash
# The refinement report (issues 15 and 30): hybrid, verified hybrid and verified + refine at
# budgets 16 to 128 on samples/ood2 (held-out corpus sentences: perl-doc, Jane Austen) and
# samples/everyday (everyday dialogue, chatterbot-corpus), with all six figures (token F1,
# BLEU with its bootstrap 95% interval, round-trip cosine, independent meaning, fluency under
# the judge and the share below the references' 5th percentile, word repetition), a markdown
# table per sample and the plot docs/refine_budget.{png,json}. One input at a time (lwdec
# eval), so p50 is seconds per input; run it on a quiet machine. The budget curve runs on the
# first ROWS_CURVE rows (default 100); budget 64 and the unrefined rows on all 200.
#
#   bash scripts/refine_report.sh [OUTDIR]     # default target/refine_report; reruns reuse it
#
# Needs target/release/lwdec, the encoder (scripts/install-encoder.sh --python: the .venv with
# torch and sentence-transformers for scripts/meaning.py), the judge
# (scripts/build_fluency_judge.sh, or JUDGE=path) and matplotlib in the .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/refine_report}
curve=${ROWS_CURVE:-100}
export JUDGE=${JUDGE:-${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}/judge/judge.lm}
R="--decoder hybrid --verify --refine"
for sample in ood2 everyday; do
  echo "## samples/$sample"
  bash scripts/sweep_refine.sh "samples/$sample" "$out/$sample" \
    "hybrid|--decoder hybrid" "verified|--decoder hybrid --verify" "r64|$R --budget 64" \
    "hybrid_$curve|--decoder hybrid --limit $curve" \
    "r16_$curve|$R --budget 16 --limit $curve" "r32_$curve|$R --budget 32 --limit $curve" \
    "r64_$curve|$R --budget 64 --limit $curve" "r128_$curve|$R --budget 128 --limit $curve"
done
.venv/bin/python scripts/plot_refine.py --out docs/refine_budget \
  "samples/ood2=$out/ood2" "samples/everyday=$out/everyday"
