#!/usr/bin/env bash
# The verified-decoding report (issue 15): bank, hybrid, verified hybrid and verified + refine
# at budgets 16 to 1,024 on samples/ood and samples/ood2, a markdown table per sample and the
# plot docs/refine_budget.{png,json}. One input at a time (lwdec eval), so p50 is seconds per
# input; run it on a quiet machine. Budgets 256 and 1,024 run on the first ROWS_LARGE rows
# (default 100) to keep the report under an hour on 2 cores; the rest on all 200.
#
#   bash scripts/refine_report.sh [OUTDIR]     # default target/refine_report; reruns reuse it
#
# Needs target/release/lwdec, the encoder (scripts/install-encoder.sh --python: the .venv with
# torch and sentence-transformers for scripts/meaning.py) and matplotlib in the .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/refine_report}
large=${ROWS_LARGE:-100}
R="--decoder hybrid --verify --refine"
for sample in ood ood2; do
  echo "## samples/$sample"
  bash scripts/sweep_refine.sh "samples/$sample" "$out/$sample" \
    "bank|--decoder phrase-bank" "hybrid|--decoder hybrid" "verified|--decoder hybrid --verify" \
    "r16|$R --budget 16" "r32|$R --budget 32" "r48|$R --budget 48" "r64|$R --budget 64" \
    "r256|$R --budget 256 --limit $large" "r1024|$R --budget 1024 --limit $large" \
    "hybrid$large|--decoder hybrid --limit $large" "r64_$large|$R --budget 64 --limit $large"
done
.venv/bin/python scripts/plot_refine.py --out docs/refine_budget \
  "samples/ood=$out/ood" "samples/ood2=$out/ood2"
