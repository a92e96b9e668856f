#!/usr/bin/env bash
# Installs the system packages the crate needs to build FAISS statically (cmake, a C++
# compiler, OpenBLAS/LAPACK), when they are missing. Debian/Ubuntu, run as root.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
dpkg -s liblapack-dev >/dev/null 2>&1 || need+=(liblapack-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (Rust 1.85 or newer)" >&2
  exit 1
fi
