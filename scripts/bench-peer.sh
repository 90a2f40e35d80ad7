#!/usr/bin/env bash
# Installs the benchmark's peer, `wasmtime serve` 48.0.8, into target/peer,
# unless that exact version is already there. Takes about 15 minutes on two
# cores, once; `just bench` uses it when present and says so when not.
set -euo pipefail
cd "$(dirname "$0")/.."

version="48.0.8"
root="target/peer"
binary="$root/bin/wasmtime"

# `wasmtime --version` prints "wasmtime 48.0.8", maybe followed by a commit.
if [ -x "$binary" ] && [ "$("$binary" --version | awk '{print $2}')" = "$version" ]; then
  echo "bench-peer: $binary is wasmtime $version already"
  exit 0
fi
# Niced: the build is long and the machine is shared. A build directory of
# its own lets an interrupted install resume where it stopped.
CARGO_TARGET_DIR="$root/build" nice cargo install wasmtime-cli \
  --version "$version" --locked --root "$root"
