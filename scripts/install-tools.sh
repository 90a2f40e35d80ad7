#!/usr/bin/env bash
# Installs what building and testing reprise needs, skipping what is there:
# the wasm32-wasip2 Rust target, `just` and redis-server. Safe to run any
# number of times.
#
# `just` goes into target/tools/bin (which ./just puts on PATH) when it is
# not on PATH already: from PyPI's prebuilt `rust-just` into a directory of
# its own, which needs no virtualenv and is allowed where the system Python
# refuses `pip install` (PEP 668), or else built with cargo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/target/tools"

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

if ! PATH="$tools/bin:$PATH" command -v just >/dev/null 2>&1; then
  echo "installing just into $tools/bin" >&2
  mkdir -p "$tools/bin"
  if python3 -m pip install --quiet --disable-pip-version-check --target "$tools/pypi" rust-just 2>/dev/null; then
    ln -sf "$tools/pypi/bin/just" "$tools/bin/just"
  else
    cargo install --locked --quiet --root "$tools" just
  fi
fi

# redis-server, for the tests where two host-runner processes share one
# key-value store (-Skeyvalue-redis): Debian's package, through apt-get when
# it can run (as root); the tests that need it print why they skip where it
# cannot be installed.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
      || echo "could not install redis-server; the Redis tests will skip" >&2
    # The package starts a system-wide server on port 6379; the tests start
    # their own on free ports, so stop it where the machine has services.
    if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
  else
    echo "redis-server is missing and apt-get cannot run here; the Redis tests will skip" >&2
  fi
fi
