#!/usr/bin/env bash
# Installs what building and testing reprise needs, skipping what is there:
# the wasm32-wasip2 Rust target and `just`. Safe to run any number of times.
set -euo pipefail

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

if ! command -v just >/dev/null 2>&1; then
  # The PyPI package ships a prebuilt `just`; fall back to building it.
  python3 -m pip install --quiet rust-just 2>/dev/null || cargo install --locked just
fi
