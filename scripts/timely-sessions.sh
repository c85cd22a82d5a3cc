#!/usr/bin/env bash
# Runs the example timely job (crates/keyedstate-timely/src/bin/sessions.rs) as PROCESSES
# processes (default 2) x WORKERS workers (default 2) on 127.0.0.1, on free ports, checkpointing
# to ROOT (default a directory under DIR; an s3:// URL works too) and writing its epoch files to
# DIR/out. Run it again with the same DIR (and other PROCESSES / WORKERS) to restart the job from
# its latest checkpoint. Arguments are passed on to every process (see `timely-sessions --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
processes="${PROCESSES:-2}" workers="${WORKERS:-2}"
dir="${DIR:-$(mktemp -d)}"
root="${ROOT:-$dir/checkpoints}"
cargo build --quiet --release -p keyedstate-timely --bin timely-sessions
exe=target/release/timely-sessions
hosts="$dir/hosts"
python3 - "$processes" > "$hosts" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
for s in socks: print("127.0.0.1:%d" % s.getsockname()[1])
PY
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for ((p = 0; p < processes; p++)); do
  "$exe" --root "$root" --out "$dir/out" --work "$dir/work-$p" "$@" \
    -- -w "$workers" -n "$processes" -p "$p" -h "$hosts" &
  pids+=($!)
  sleep 0.1 # each process connects to the ones before it
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
pids=()
[ "$status" -eq 0 ] || { echo "timely-sessions: a process failed ($status)" >&2; exit "$status"; }
sessions=$(cat "$dir"/out/epoch-*.txt | wc -l)
events=$(cat "$dir"/out/epoch-*.txt | sed 's/.*events=//' | awk '{s += $1} END {print s}')
echo "timely-sessions: $processes processes x $workers workers: sessions=$sessions events=$events" \
  "output=$dir/out checkpoints=$root"
