#!/usr/bin/env bash
# Coverage-guided fuzzing of every loader (issue 28): builds the cargo-fuzz targets in fuzz/
# (libFuzzer, AddressSanitizer) and runs each from its committed seed corpus
# (fuzz/corpus/<target>/, read-only: new inputs go to a scratch folder). A crash, a panic, an
# abort, a hang or an input over the memory limit fails the script; libFuzzer saves the input
# under fuzz/artifacts/<target>/ (replay: `cargo fuzz run <target> <file>`; commit it to the
# target's corpus once fixed, so every later run replays it).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]   explore: SECONDS (default 60) per target
#   bash scripts/fuzz.sh --runs N [TARGET...]    CI: the corpus, then N inputs from a fixed
#                                                seed, the same inputs on every run
#
# The build goes to target/fuzz (FUZZ_TARGET_DIR overrides): its own FAISS build (~10 min on
# 2 cores the first time, then incremental). The stable toolchain runs cargo-fuzz's nightly
# flags with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--runs" ]; then
    budget=(-runs="$2" -seed=1)
    what="$2 seeded inputs"
    shift 2
else
    budget=(-max_total_time="${1:-60}")
    what="${1:-60} s"
    shift || true
fi
export RUSTC_BOOTSTRAP=1
# an allocation too large to ever succeed fails as it would outside AddressSanitizer (null:
# C++ throws bad_alloc, Rust aborts) instead of ASan stopping at once
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=0}
target_dir=${FUZZ_TARGET_DIR:-$PWD/target/fuzz}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
started=$(date +%s)
if [ $# -eq 0 ]; then
    cargo fuzz build --target-dir "$target_dir"
else
    for t in "${targets[@]}"; do cargo fuzz build --target-dir "$target_dir" "$t"; done
fi
echo "fuzz: build took $(( $(date +%s) - started )) s"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    echo "fuzz: $t, $what"
    # -rss_limit_mb / -malloc_limit_mb: a loader that allocates by a size its input claims
    # fails here; -timeout: one input taking over 20 s (a hang) fails too; -detect_leaks=0:
    # FAISS keeps a few small objects for the process's life (128 bytes per index read)
    if ! cargo fuzz run --target-dir "$target_dir" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        "${budget[@]}" -rss_limit_mb=3072 -malloc_limit_mb=2048 -timeout=20 \
        -detect_leaks=0 -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
        grep -v "^Output of\|^\s*\[" "$scratch/$t.log" | tail -60 | cut -c1-400 >&2
        echo "fuzz: $t failed; the input is saved in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE" \
        "$scratch/$t.log" || true
done
echo "fuzz: ${#targets[@]} targets ran $what each, nothing found ($(( $(date +%s) - started )) s in all)"
