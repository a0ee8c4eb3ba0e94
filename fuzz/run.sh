#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20), installing cargo-fuzz when missing.
#
#   fuzz/run.sh 300
#
# Only a stable toolchain is needed: libFuzzer's instrumentation flags are unlocked with
# RUSTC_BOOTSTRAP=1. Corpora grow under fuzz/corpus/<target> (seeded with the example
# rulebooks); a crash leaves its input under fuzz/artifacts/<target> and fails the script.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-20}"
targets=(envelope_decode deframe rulebook_compile)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

mkdir -p corpus/rulebook_compile
for f in ../rules/examples/*.yml ../rules/examples/seed/*.yml; do
    [ -f "$f" ] && cp -f "$f" "corpus/rulebook_compile/seed-$(basename "$f")"
done

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    printf '==> fuzz %s for %ss\n' "$t" "$seconds"
    cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1
done
