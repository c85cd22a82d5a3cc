#!/usr/bin/env bash
# The long reliability runs, outside CI (release build):
# - the randomized job test, KEYEDSTATE_SCHEDULES schedules per engine (default 10,000), each
#   printing `schedules=N divergences=D seeds=A..=B`;
# - the SIGKILL loop, KILLS kill points (default 1,000), printing `kills=N ...`.
# `scripts/soak.sh job` or `scripts/soak.sh kill` runs one of them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
what="${1:-all}"
if [ "$what" = all ] || [ "$what" = job ]; then
  for crate in keyedstate-heap keyedstate-rocksdb; do
    cargo test --release -p "$crate" --test job_model -- --ignored soak --nocapture
  done
fi
if [ "$what" = all ] || [ "$what" = kill ]; then
  KILLS="${KILLS:-1000}" cargo test --release --test checkpoint_survives_sigkill -- --ignored soak --nocapture
fi
