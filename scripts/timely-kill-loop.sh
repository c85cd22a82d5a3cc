#!/usr/bin/env bash
# The timely kill loop, outside CI: the example job `timely-sessions` as separate processes on
# loopback, one process killed with SIGKILL at a random point KILLS times (default 50), the job
# restarted each time from its latest checkpoint at another layout (2 processes x 2 workers,
# 3 x 1, 1 x 1, in turn), then run to its end and its output compared with an uninterrupted
# run's. Prints each restore (worker count, checkpoint, time) and
# `engine=rocksdb kills=50 restores=R mismatches=0 seed=...`. ENGINE=heap for the heap backend.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
KILLS="${KILLS:-50}" ENGINE="${ENGINE:-rocksdb}" cargo test --release -p keyedstate-timely \
  --test sessions_survive_sigkill -- --ignored soak --nocapture
