#!/usr/bin/env bash
# Coverage-guided fuzzing of the checkpoint decoders (outside CI): cargo-fuzz (libFuzzer) on the
# nightly toolchain, each target for RUNS inputs (default 10,000,000), starting from the seeds
# in fuzz/seeds/<target>/ (the corpus grows in fuzz/corpus/<target>/, not committed).
# Prints `fuzz <target>: <runs> inputs, 0 crashes, <seconds> s` per target; a crash stops it
# with the input saved in fuzz/artifacts/<target>/.
#   scripts/fuzz.sh              both targets
#   scripts/fuzz.sh metadata     one of: metadata, full_snapshot
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
runs="${RUNS:-10000000}"
targets=("${@:-metadata full_snapshot}")
for target in ${targets[@]}; do
  mkdir -p "fuzz/corpus/$target"
  cp -n "fuzz/seeds/$target/"* "fuzz/corpus/$target/" 2>/dev/null || true
  start=$(date +%s)
  # -rss_limit_mb: an allocation beyond the decode limits would show as a crash.
  (cd fuzz && cargo +nightly fuzz run "$target" "corpus/$target" -- \
      -runs="$runs" -rss_limit_mb=512 -max_len=4096 -print_final_stats=1)
  echo "fuzz $target: $runs inputs, 0 crashes, $(( $(date +%s) - start )) s"
done
