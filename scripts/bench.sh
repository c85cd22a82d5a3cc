#!/usr/bin/env bash
# Runs `keyedstate bench` from a release build (arguments are passed on; see --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
cargo run --quiet --release -p keyedstate-cli -- bench "$@"
