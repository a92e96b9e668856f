#!/usr/bin/env bash
# The language model's queries against KenLM's (PyPI `kenlm`, compiled into a venv in
# target/kenlm-venv once): a pruned trigram model of the bundled corpus sample, exported as
# ARPA, must score the held-out samples' sentences as KenLM does, within 1e-3 (log10).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/kenlm-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import kenlm" 2>/dev/null || "$venv/bin/python" -m pip install -q kenlm==0.3.0
cargo build --release --quiet --bin lwdec
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
target/release/lwdec lm build samples/corpus_sample.txt samples/validation.txt --out "$tmp/m.lm" \
  --order 3 --min-counts 1,2,2 --arpa "$tmp/m.arpa" >/dev/null
cat samples/ood2.txt samples/everyday.txt samples/ood.txt > "$tmp/sentences.txt"
"$venv/bin/python" scripts/kenlm_parity.py "$tmp/m.lm" "$tmp/m.arpa" "$tmp/sentences.txt" \
  --lwdec target/release/lwdec 2>/dev/null
