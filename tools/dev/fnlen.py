#!/usr/bin/env python3
"""Lengths of non-test Rust functions (lines from `fn` to its closing brace).
Usage: tools/dev/fnlen.py [MIN] — lists functions of MIN lines or more, longest first."""
import os, re, sys

MIN = next((int(a) for a in sys.argv[1:] if a.isdigit()), 100)
FN = re.compile(r'^(\s*)(pub(\([a-z]+\))?\s+)?(const\s+)?(async\s+)?fn\s+([A-Za-z0-9_]+)')
out = []
for root in ["core/src", "agent/src", "ctl/src", "emulator/src", "tests/src"]:
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs") or f == "tests.rs":
                continue
            path = os.path.join(dirpath, f)
            lines = open(path).read().split("\n")
            # drop #[cfg(test)] mod ... { } blocks
            skip_from = None
            for i, l in enumerate(lines):
                if l.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r'\s*mod\s+\w+\s*\{', lines[i + 1]):
                    skip_from = i
                    break
            end = skip_from if skip_from is not None else len(lines)
            i = 0
            while i < end:
                m = FN.match(lines[i])
                if m and not lines[i].rstrip().endswith(";"):
                    indent = m.group(1)
                    j = i
                    while j < end and not (lines[j].startswith(indent + "}") and len(lines[j].rstrip()) == len(indent) + 1):
                        j += 1
                    n = j - i + 1
                    if n >= MIN:
                        out.append((n, path, i + 1, m.group(6)))
                i += 1
out.sort(reverse=True)
for n, p, line, name in out:
    print(f"{n:5} {p}:{line} {name}")
# `--check`: fail when any function is over MIN lines (scripts/test runs it).
if "--check" in sys.argv and out:
    sys.exit(1)
