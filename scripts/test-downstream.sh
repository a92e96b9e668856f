#!/usr/bin/env bash
# A project outside the repository depends on lightweight-decoder and decodes (issue 29):
# tests/downstream, built against the crate as `cargo package` ships it (the code, no data:
# Cargo.toml's `exclude`), with the leanest features, finds the bank and generator in a data
# folder that `lwdec data install` fills (checked by the manifest's and the models' checksums).
# Nothing is reachable through this checkout: the packaged crate's CARGO_MANIFEST_DIR is a
# temporary folder without data. The build shares target/ (FAISS is not built again).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo package --no-verify --allow-dirty --quiet
version=$(cargo pkgid | sed 's/.*[#@]//')
tar xzf "target/package/lightweight-decoder-$version.crate" -C "$tmp"
for data in phrase_bank model; do
    if [ -e "$tmp/lightweight-decoder-$version/$data" ]; then
        echo "test-downstream: the package holds $data" >&2
        exit 1
    fi
done
cp -r tests/downstream "$tmp/downstream"
cp Cargo.lock "$tmp/downstream/Cargo.lock"   # the repository's versions (FAISS reused)
sed -i "s|path = \"../..\"|path = \"../lightweight-decoder-$version\"|" "$tmp/downstream/Cargo.toml"
mkdir -p "$tmp/samples"
for set in wordnet_sample ood2; do
    cp samples/$set.txt samples/$set.i8.npy samples/$set.scale.npy "$tmp/samples/"
done
cargo build --release --quiet --bin lwdec
target/release/lwdec data install --dir "$tmp/data"
(
    cd "$tmp/downstream"
    # the leanest features: no command line, encoder or trainer in the dependency tree
    tree=$(cargo tree -e normal --quiet)   # its own line: a failing cargo tree stops the script
    if grep -E "clap|indicatif|tokenizers" <<<"$tree"; then
        echo "test-downstream: the leanest build pulls the crates above" >&2
        exit 1
    fi
    env -u LWDEC_BANK_DIR -u LWDEC_MODEL -u LWDEC_LANGUAGE_MODEL LWDEC_DATA_DIR="$tmp/data" \
        CARGO_TARGET_DIR="$repo/target" cargo run --release --quiet -- "$tmp/samples"
)
echo "test-downstream: ok"
