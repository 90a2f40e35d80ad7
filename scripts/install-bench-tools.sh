#!/usr/bin/env bash
# Installs what `just bench` needs beyond the build, skipping what is there:
# the wrk load generator (Debian/Ubuntu package). Safe to run any number of
# times.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
# A fresh machine may have no package lists yet; refresh them only then.
$sudo apt-get install -y wrk || { $sudo apt-get update && $sudo apt-get install -y wrk; }
