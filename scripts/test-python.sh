#!/usr/bin/env bash
# The Python package's tests, against the prebuilt wheel as a user gets it: the wheel is built
# (scripts/build-wheel.sh, sharing target/ with the crate, so FAISS is not built again), then
# installed with the pinned test requirements into a fresh virtual environment in a temporary
# folder, with no Rust toolchain, cmake or compiler on PATH (the install is timed: it must take
# under 30 seconds). The tests and the few repository files they read (samples, a config, the
# bank's manifest, the README and the examples) are copied beside it, and pytest runs there:
# nothing of the repository is on sys.path. The `lwdec` binary the parity tests compare with is
# passed by absolute path ($LWDEC_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bash scripts/install-encoder.sh   # all-mpnet-base-v2 for MpnetEncoder's tests (once; no torch)
wheel=$(bash scripts/build-wheel.sh | tail -n 1)
cargo build --release --quiet --bin lwdec # the CLI the parity tests compare with

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lwdec-python.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
python=$(python3 -c 'import sys; print(sys.executable)')   # the interpreter, not a shim
"$python" -m venv "$tmp/venv"
clean_path="$tmp/venv/bin"   # no cargo, rustc, cmake or cc: the wheel must need none of them
for tool in cargo rustc cmake cc c++; do
  if PATH=$clean_path command -v "$tool" >/dev/null; then
    echo "test-python.sh: $tool is on the test PATH" >&2
    exit 1
  fi
done
# the registry's speed is not the wheel's: the requirements are fetched first, the timed
# install then reads only local files
PATH=$clean_path "$tmp/venv/bin/python" -m pip download -q --disable-pip-version-check \
  -d "$tmp/downloads" -r bindings/python/requirements-test.txt
started=$(date +%s.%N)
PATH=$clean_path "$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check \
  --no-index --find-links "$tmp/downloads" "$wheel" -r bindings/python/requirements-test.txt
seconds=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
  "$started" "$(date +%s.%N)")
echo "installed $(basename "$wheel") ($(du -m "$wheel" | cut -f1) MB) with the test requirements in ${seconds} s"
if python3 -c "import sys; sys.exit(float(sys.argv[1]) < 30)" "$seconds"; then
  echo "test-python.sh: the install took ${seconds} s, not under 30 s" >&2
  exit 1
fi

# the repository files the tests read, at their relative paths ($LWDEC_TEST_ROOT)
files=(README.md docs/hybrid_default_config.json phrase_bank/manifest.json
  corpus/bank_stages.json model/generative.q4.gguf
  samples/encoder_parity.jsonl samples/encoder_parity.f32.npy
  samples/sessions_dev.boundaries.txt)
for name in validation ood sessions_dev; do
  files+=("samples/$name.i8.npy" "samples/$name.scale.npy" "samples/$name.txt")
done
mkdir -p "$tmp/root/bindings/python"
for f in "${files[@]}"; do
  mkdir -p "$tmp/root/$(dirname "$f")"
  cp "$f" "$tmp/root/$f"
done
cp -r bindings/python/examples "$tmp/root/bindings/python/examples"
cp -r bindings/python/tests "$tmp/tests"
rm -rf "$tmp/tests/__pycache__" "$tmp/root/bindings/python/examples/__pycache__"

cd "$tmp"
PATH=$clean_path LWDEC_BIN="$root/target/release/lwdec" LWDEC_TEST_ROOT="$tmp/root" \
  LWDEC_CHECKOUT="$root" LWDEC_REQUIRE_ENCODER=1 \
  "$tmp/venv/bin/pytest" -q -p no:cacheprovider -rs tests
