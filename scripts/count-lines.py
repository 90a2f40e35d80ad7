#!/usr/bin/env python3
"""Counts a Rust sample's lines the way docs/src/reference/sample-sizes.md
reports them: formatted with rustfmt (edition 2024), then every line that is
neither blank nor only a comment. Files given together are one sample.

Usage: scripts/count-lines.py FILE... (prints the total)

It does not fetch or keep other projects' files: point it at a checkout."""

import subprocess
import sys


def count(path):
    with open(path, encoding="utf-8") as source:
        formatted = subprocess.run(
            ["rustfmt", "--edition", "2024", "--emit", "stdout", "--quiet"],
            stdin=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return sum(1 for line in formatted.splitlines() if line.strip() and not line.strip().startswith("//"))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: scripts/count-lines.py FILE...")
    print(sum(count(path) for path in sys.argv[1:]))
