#!/usr/bin/env bash
# The hybrid's evaluation (issue 4): builds the bank of the training phrases only (exact Flat
# index, validation split excluded; needs ../shared/data), calibrates the hybrid's rule on one
# half of each set and reports bank / generator / hybrid token F1 on the other half of the
# generator's home (held-out validation), the bank's home (exact in-bank embeddings) and a 50/50
# mix. Writes docs/hybrid_report.json, the decoder config with the fitted rule
# docs/hybrid_config.json (for that bank and model), and, when matplotlib is available (.venv from
# scripts/install-encoder.sh --python plus `pip install matplotlib`), docs/hybrid_report.png.
# Usage: bash scripts/hybrid_report.sh [MODEL]   (default: the bundled model)
# With GUIDE=1 the generator is retrieval-guided by the same bank (GuideSettings::default(), beam
# 8) and the outputs are docs/hybrid_guided_{report.json,config.json,report.png}.
# With DEFAULT=1 the rule shipped as HybridConfig::default() is fitted: a compressed bank like the
# default one (IVF1024,PQ96, validation split excluded; about 30 minutes to build on 2 cores),
# the guided generator decoding greedily, clean inputs and noise to cosine 0.9 and 0.8; outputs
# docs/hybrid_default_{report.json,config.json,report.png}.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-model/generative.q4.gguf}
shared=${SHARED:-../shared/data}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --bin lwdec --example hybrid_report
name=hybrid
bank=target/eval/train_bank_flat
index=(--index Flat)
extra=()
if [ "${GUIDE:-0}" = 1 ]; then
  name=hybrid_guided
  extra=(--guide --beam 8)
fi
if [ "${DEFAULT:-0}" = 1 ]; then
  name=hybrid_default
  bank=target/eval/pq_bank_noval
  index=(--index IVF1024,PQ96 --train-size 65536 --nprobe 16)
  extra=(--guide --noise-cosine 1,0.9,0.8)
fi
if [ ! -f "$bank/manifest.json" ]; then
  "$target/release/lwdec" bank build --phrases "$shared/wordnet.txt" \
    --embeddings "$shared/wordnet.i8.npy" --scale "$shared/wordnet.scale.npy" \
    "${index[@]}" --exclude-validation --out "$bank"
fi
"$target/release/examples/hybrid_report" --bank "$bank" --model "$model" \
  --out "docs/${name}_report.json" --config-out "docs/${name}_config.json" "${extra[@]}"
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
if "$python" -c "import matplotlib" 2>/dev/null; then
  "$python" scripts/hybrid_plot.py "docs/${name}_report.json" "docs/${name}_report.png"
else
  echo "matplotlib not installed: skipped docs/${name}_report.png"
fi
