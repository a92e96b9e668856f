#!/usr/bin/env bash
# Regenerate samples/ood2.{txt,i8.npy,scale.npy}: a second out-of-domain sample, 200 real
# sentences of the corpus's out-of-domain split (corpus/manifest.json: perl-doc and
# janeaustenr, 100 of each, seeded choice), sources that are never trained on or banked;
# not WordNet, not the reserved fortunes or Debian package descriptions. Embedded with
# all-mpnet-base-v2 like samples/ood. Needs the corpus (bash scripts/build_corpus.sh) and the
# encoder of scripts/install-encoder.sh --python.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${LWDEC_CORPUS_DIR:-$HOME/.cache/lightweight-decoder/corpus}
.venv/bin/python - "$corpus/corpus.tsv" samples/ood2.txt <<'PY'
import random, sys
by_source = {}
for line in open(sys.argv[1], encoding="utf-8"):
    text, source, split = line.rstrip("\n").split("\t")
    if split == "ood":
        by_source.setdefault(source, []).append(text)
rng = random.Random(2026)
picked = []
for source in sorted(by_source):
    picked += rng.sample(sorted(by_source[source]), 100)
tmp = sys.argv[2] + ".tmp"
open(tmp, "w", encoding="utf-8").write("\n".join(picked) + "\n")
import os; os.replace(tmp, sys.argv[2])
print({s: len(v) for s, v in by_source.items()}, "->", len(picked))
PY
HF_HUB_OFFLINE=1 .venv/bin/python "${SHARED_TOOLS:-../shared/tools}/embed.py" \
  .venv/all-mpnet-base-v2 samples/ood2.txt samples/ood2
