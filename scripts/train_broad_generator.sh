#!/usr/bin/env bash
# Trains the generator on WordNet + the corpus's train split (issue 16): about one epoch
# (729,631 rows, 54.8M predicted bytes, 11,222 steps of 64 without the 1/64 held out; the run
# ends at step 34,300) resumed from run7's step 23000, at max_len 200
# (the corpus's longest sentences; RoPE adds no parameters), with the settings of
# training/checkpoints/run9/train_config.json. Resumable: run it again and it continues from
# the newest checkpoint in $OUT (on a new machine, from the committed
# training/checkpoints/run9/latest.json). Needs every train chunk embedded
# (scripts/corpus/embed_corpus.py) and writes its input with scripts/corpus/bank_input.py
# (the bank's input: WordNet first, then train; the FNV-1a split holds 1/64 out).
#
# Usage: bash scripts/train_broad_generator.sh [DATA_DIR]     (default ../shared/data)
#   OUT=DIR       checkpoints and train_log.jsonl (default $CACHE/runs/run9, outside the repo)
#   TRAINER=torch (default; scripts/generator_torch/train.py, 1.4x faster on 2 CPU cores and
#                 minutes on a GPU: DEVICE=cuda) or TRAINER=rust (lwdec train, the reference)
# About 3.2 hours on 2 cores with torch (at the 4,718 bytes/s measured on samples/wordnet_sample). Then: lwdec model export --checkpoint "$OUT" --out F.gguf
# and compare F.gguf with the bundled model (docs/experiments.md, issue 16's rule).
set -euo pipefail
data=$(realpath "${1:-$(dirname "$0")/../../shared/data}")
cd "$(dirname "$0")/.."
cache=${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}
input=$cache/corpus/bank
out=${OUT:-$cache/runs/run9}
config=training/checkpoints/run9/train_config.json
# (Re)write the input unless it holds every train chunk of the current split file.
current() {
  [[ -f $input/meta.json ]] || return 1
  python3 - "$input/meta.json" "$cache/corpus/emb/train/meta.json" <<'PY'
import json, sys
bank, emb = (json.load(open(p)) for p in sys.argv[1:])
complete = bank["wordnet_rows"] > 0 and len(bank["train_chunks"]) == bank["train_chunk_count"]
sys.exit(0 if complete and bank["train_sha256"] == emb["sha256"] else 1)
PY
}
current || .venv/bin/python scripts/corpus/bank_input.py --data "$data"
# newest first: this machine's run, then the run's committed checkpoint (a session that ends
# mid-run commits its latest weights to training/checkpoints/run9), then run7's step 23000
resume=training/checkpoints/run7/latest.json
[[ -f training/checkpoints/run9/latest.json ]] && resume=training/checkpoints/run9/latest.json
[[ -f $out/latest.json ]] && resume=$out/latest.json
echo "training from $resume into $out"
if [[ "${TRAINER:-torch}" == rust ]]; then
  cargo build --release --bin lwdec
  target/release/lwdec train --phrases "$input/phrases.txt" \
    --embeddings "$input/i8.npy" --scale "$input/scale.npy" \
    --resume "$resume" --train-config "$config" --max-len 200 --out "$out" --workers 2
else
  PYTHONUNBUFFERED=1 .venv/bin/python scripts/generator_torch/train.py \
    --phrases "$input/phrases.txt" --embeddings "$input/i8.npy" --scale "$input/scale.npy" \
    --resume "$resume" --train-config "$config" --max-len 200 --out "$out" \
    --device "${DEVICE:-auto}"
fi
