#!/usr/bin/env python3
"""Import cycles among sibling modules, at every level of a crate (non-test code).

Usage: tools/dev/modcycles.py [--quiet] SRC_DIR...   (default: every crate of the workspace)

For each module folder (the crate root, core/src/ops, core/src/ops/restore, ...) the edges are
"child A names something in sibling B" (through `crate::`, `super::` or `self::` paths, `use`
trees with braces expanded); a child naming its own parent's items is not an edge. Prints each
level's cycles and exits 1 when there is any (scripts/test runs it).
"""
import os
import re
import sys

CRATES = ["contract/src", "core/src", "agent/src", "ctl/src", "emulator/src", "tests/src"]


def module_files(src):
    """{module path (tuple): file} for every module of the crate under src."""
    mods = {}
    root = "lib.rs" if os.path.exists(os.path.join(src, "lib.rs")) else "main.rs"
    mods[()] = os.path.join(src, root)

    def walk(d, prefix):
        for entry in sorted(os.listdir(d)):
            full = os.path.join(d, entry)
            if entry in ("lib.rs", "main.rs", "mod.rs") and d == src:
                continue
            if os.path.isdir(full):
                path = prefix + (entry,)
                if os.path.exists(os.path.join(full, "mod.rs")):
                    mods[path] = os.path.join(full, "mod.rs")
                walk(full, path)
            elif entry.endswith(".rs") and entry != "mod.rs":
                path = prefix + (entry[:-3],)
                mods[path] = full

    walk(src, ())
    return mods


def strip(text):
    """Non-test code without comments."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    for line in text.split("\n"):
        cut = line.find("//")
        if cut >= 0 and '"' not in line[:cut]:
            line = line[:cut]
        lines.append(line)
    text = "\n".join(lines)
    cut = re.search(r"#\[cfg\(test\)\]\s*\n\s*(pub\s+)?mod\s+\w+\s*\{", text)
    return text[: cut.start()] if cut else text


def expand(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (each as a list of segments)."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    out = []

    def go(prefix, s):
        depth, start, parts = 0, 0, []
        for i, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:i])
                start = i + 1
        parts.append(s[start:])
        for part in filter(None, parts):
            brace = part.find("{")
            if brace >= 0 and part.endswith("}"):
                head = [p for p in part[:brace].split("::") if p]
                go(prefix + head, part[brace + 1 : -1])
            else:
                out.append(prefix + [p for p in part.split("::") if p])

    go([], tree)
    return out


def paths(text):
    """Every crate/super/self path the code names."""
    found = []
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        found.extend(expand(m.group(1)))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", text):
        found.append(m.group(1).split("::"))
    return [p for p in found if p and p[0] in ("crate", "super", "self")]


def resolve(cur, path, mods):
    """The deepest module `path` (named in module `cur`) reaches."""
    at = list(cur)
    segs = list(path)
    if segs[0] == "crate":
        at = []
        segs = segs[1:]
    else:
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                at = at[:-1]
            segs = segs[1:]
    for s in segs:
        if tuple(at + [s]) in mods:
            at.append(s)
        else:
            break
    return tuple(at)


def edges_of(src):
    mods = module_files(src)
    edges = {}  # level -> {child: set(children)}
    for cur, f in mods.items():
        text = strip(open(f).read())
        for p in paths(text):
            target = resolve(cur, p, mods)
            n = 0
            while n < min(len(cur), len(target)) and cur[n] == target[n]:
                n += 1
            if n < len(cur) and n < len(target):
                level = cur[:n]
                edges.setdefault(level, {}).setdefault(cur[n], set()).add(target[n])
    return edges


def cycles(graph):
    found = set()

    def dfs(start, node, path):
        for nxt in graph.get(node, ()):
            if nxt == start:
                k = min(range(len(path)), key=lambda i: path[i])
                found.add(tuple(path[k:] + path[:k]))
            elif nxt not in path and len(path) < 8:
                dfs(start, nxt, path + [nxt])

    for m in graph:
        dfs(m, m, [m])
    return sorted(found, key=lambda c: (len(c), c))


def main(argv):
    quiet = "--quiet" in argv
    srcs = [a for a in argv if not a.startswith("--")] or CRATES
    total = 0
    for src in srcs:
        for level, graph in sorted(edges_of(src).items()):
            where = os.path.join(src, *level) if level else src
            cs = cycles(graph)
            total += len(cs)
            if not quiet:
                for m in sorted(graph):
                    print(f"{where}: {m} -> {', '.join(sorted(graph[m]))}")
            for c in cs[:40]:
                print(f"{where}: cycle " + " -> ".join(c + (c[0],)))
    print(f"{total} cycle(s) in {', '.join(srcs)}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
