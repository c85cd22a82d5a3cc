#!/usr/bin/env bash
# Runs `keyedstate demo` (arguments are passed on; see `keyedstate demo --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
cargo run --quiet -p keyedstate-cli -- demo "$@"
