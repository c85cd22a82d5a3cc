#!/usr/bin/env bash
# Instructions per operation (callgrind) of the heap's and RocksDB's valueGet and valueUpdate
# (and per record of their batch calls, 1,000 records a call), listGet, listAppend (and its
# batch call), mapGet and mapUpdate
# with every key in cache: repeatable on a noisy machine, unlike times. See
# examples/instructions.rs; the figures go to docs/performance.md.
# Usage: scripts/instructions.sh [heap|rocksdb ...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
cargo build --quiet --release --example instructions
operations=100000 # examples/instructions.rs: OPERATIONS
engines=("$@"); [ ${#engines[@]} -gt 0 ] || engines=(heap rocksdb)
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
printf 'engine\toperation\tinstructions_per_op\n'
for engine in "${engines[@]}"; do
  for op in valueGet valueUpdate valueGetBatch valueUpdateBatch listGet listAppend listAppendBatch mapGet mapUpdate mapGetBatch; do
    valgrind --tool=callgrind --toggle-collect='*timed_ops*' --callgrind-out-file="$out/cg" \
      target/release/examples/instructions "$engine" "$op" 2>"$out/log" >/dev/null \
      || { cat "$out/log" >&2; exit 1; }
    total=$(grep -m1 '^summary:' "$out/cg" | awk '{print $2}')
    printf '%s\t%s\t%d\n' "$engine" "$op" $(( total / operations ))
  done
done
