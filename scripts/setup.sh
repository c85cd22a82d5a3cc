#!/usr/bin/env bash
# Prepares a machine to build keyedstate; sourced by the other scripts, safe to run again.
# (timely, for keyedstate-timely, is plain Rust: it needs nothing from the system.)
# - libclang (bindgen needs it to generate librocksdb-sys's bindings at build time);
# - the pinned toolchain of rust-toolchain.toml, linked to an installed stable of that version
#   instead of downloading one;
# - sccache, when the package manager has it, so RocksDB's C++ (15-20 minutes) is compiled
#   once per machine rather than once per clone and profile.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; return 1; fi
}

apt_updated=""
apt_install() {
  command -v apt-get >/dev/null || { echo "setup: no apt-get; install $* by hand" >&2; return 1; }
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# grep reads all of ldconfig's output: with -q it would stop at the first match, and ldconfig's
# SIGPIPE would fail the pipeline under pipefail (and reinstall every time).
if ! ldconfig -p 2>/dev/null | grep 'libclang\(-[0-9.]*\)\?\.so' >/dev/null; then
  echo "setup: installing libclang-dev (needed by bindgen for librocksdb-sys)"
  apt_install libclang-dev
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$root/rust-toolchain.toml")
if command -v rustup >/dev/null && ! rustup toolchain list | grep -q "^$pinned"; then
  stable_dir="$(rustup toolchain list -v | awk '/^stable/ {print $NF}' | head -n1)"
  if [ -n "$stable_dir" ] && "$stable_dir/bin/rustc" --version | grep -q " $pinned "; then
    echo "setup: linking toolchain $pinned to the installed stable"
    rustup toolchain link "$pinned" "$stable_dir"
  fi
fi

if ! command -v sccache >/dev/null; then
  apt_install sccache || echo "setup: sccache unavailable; building without a compiler cache"
fi
if command -v sccache >/dev/null && [ -z "${RUSTC_WRAPPER:-}" ]; then
  export RUSTC_WRAPPER=sccache
fi

# A real S3-compatible server for the object-store tests (crates/keyedstate-object-store/tests):
# moto's standalone server, from PyPI. The tests start it on a free loopback port themselves.
[ -x "$HOME/.local/bin/moto_server" ] && export PATH="$HOME/.local/bin:$PATH"
if ! command -v moto_server >/dev/null; then
  echo "setup: installing moto[server] (the S3 server of the object-store tests)"
  pip=$(command -v pip3 || command -v pip || true)
  if [ -z "$pip" ]; then apt_install python3-pip && pip=$(command -v pip3 || true); fi
  # A distribution's own Python refuses plain installs (PEP 668): then as the user's.
  { [ -n "$pip" ] && { "$pip" install -q 'moto[server]' \
      || "$pip" install -q --user --break-system-packages 'moto[server]'; }; } \
    || echo "setup: could not install moto[server]; the S3 server tests will fail" >&2
  [ -x "$HOME/.local/bin/moto_server" ] && export PATH="$HOME/.local/bin:$PATH"
  hash -r
fi
