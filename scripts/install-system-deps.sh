#!/usr/bin/env bash
# Installs the system packages the crate needs to build FAISS statically (cmake, a C++
# compiler, OpenBLAS/LAPACK) and Python 3 with venv (the Python package), when they are
# missing. Debian/Ubuntu, run as root.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
dpkg -s liblapack-dev >/dev/null 2>&1 || need+=(liblapack-dev)
# Python 3 with venv and pip: the encoder's installer and the Python package's tests
command -v python3 >/dev/null 2>&1 || need+=(python3)
probe=$(mktemp -d)
python3 -m venv "$probe/venv" >/dev/null 2>&1 || need+=(python3-venv)
rm -rf "$probe"
# Python's headers: scripts/test-kenlm.sh compiles PyPI kenlm's extension
python3 -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  2>/dev/null || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (Rust 1.89 or newer)" >&2
  exit 1
fi
