#!/usr/bin/env python3
"""Checks the guide's internal links: every relative link in docs/src points
to a file that exists, and every page is reachable from SUMMARY.md.

mdBook renders broken relative links without complaint, so `just docs` runs
this before building. External (http) links are not fetched: CI has no
network beyond package registries."""

import pathlib
import re
import sys

SRC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "src"
LINK = re.compile(r"\]\(([^)\s]+)\)")
problems = []

for page in sorted(SRC.rglob("*.md")):
    text = page.read_text()
    # Links inside fenced code are code, not links.
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for target in LINK.findall(prose):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            problems.append(f"{page.relative_to(SRC)}: broken link to {target}")

summary = (SRC / "SUMMARY.md").read_text()
listed = {(SRC / target).resolve() for target in LINK.findall(summary)}
for page in sorted(SRC.rglob("*.md")):
    if page.name != "SUMMARY.md" and page.resolve() not in listed:
        problems.append(f"{page.relative_to(SRC)}: not listed in SUMMARY.md")

for problem in problems:
    print(problem, file=sys.stderr)
if problems:
    sys.exit(f"{len(problems)} documentation link problem(s)")
print(f"docs: links ok ({len(list(SRC.rglob('*.md')))} pages)")
