#!/usr/bin/env python3
"""Import cycles among a crate's top-level modules (non-test code).
Usage: tools/dev/modcycles.py CRATE_SRC_DIR — prints the edges and every cycle."""
import os, re, sys, itertools

src = sys.argv[1] if len(sys.argv) > 1 else "core/src"
mods = {}
for entry in os.listdir(src):
    if entry in ("lib.rs", "main.rs"):
        continue
    name = entry[:-3] if entry.endswith(".rs") else entry
    mods[name] = os.path.join(src, entry)

def files(path):
    if os.path.isdir(path):
        for dp, _, fs in os.walk(path):
            for f in fs:
                if f.endswith(".rs"):
                    yield os.path.join(dp, f)
    else:
        yield path

edges = {m: set() for m in mods}
for m, path in mods.items():
    for f in files(path):
        text = "\n".join(l for l in open(f).read().split("\n") if not l.strip().startswith("//"))
        cut = text.find("#[cfg(test)]\nmod ")
        if cut >= 0:
            text = text[:cut]
        for other in re.findall(r"crate::([a-z_]+)", text):
            if other in mods and other != m:
                edges[m].add(other)
        # `use super::X` inside a submodule file refers to its own module: skip.

def cycles():
    found = set()
    def dfs(start, node, path):
        for nxt in edges[node]:
            if nxt == start:
                cyc = tuple(path)
                k = min(range(len(cyc)), key=lambda i: cyc[i])
                found.add(cyc[k:] + cyc[:k])
            elif nxt not in path and len(path) < 6:
                dfs(start, nxt, path + [nxt])
    for m in mods:
        dfs(m, m, [m])
    return sorted(found, key=len)

for m in sorted(edges):
    print(f"{m} -> {', '.join(sorted(edges[m]))}")
cs = cycles()
print(f"\n{len(cs)} cycle(s)")
for c in cs[:40]:
    print("  " + " -> ".join(c + (c[0],)))
