#!/usr/bin/env python3
"""Import graph of the library's source files: which file names which (through `crate::` and
`super::` paths, in `use` lines and inline), and any cycle between files.

Usage: python3 scripts/import_graph.py [src]   (exit 1 when a cycle exists)
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "src"
files = {}
for d, _, names in os.walk(root):
    if "/bin" in d:
        continue
    for n in names:
        if n.endswith(".rs"):
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)[:-3].split(os.sep)
            if rel[-1] == "mod":
                rel = rel[:-1]
            if rel == ["lib"]:
                rel = []
            files[tuple(rel)] = p


# names a folder module (or lib.rs) re-exports from its children: (module, name) -> child
reexports = {}
for mod, p in files.items():
    text = open(p).read()
    for m in re.finditer(r"pub use ([\w:]+?)(?:::\{([^}]*)\}|::(\w+));", text):
        segs = m.group(1).split("::")
        names = m.group(2).split(",") if m.group(2) else [m.group(3)]
        base = list(mod) if segs[0] not in ("crate", "super") else []
        for name in names:
            name = name.strip().split(" as ")[-1]
            if name:
                child = tuple(base + [s for s in segs if s not in ("crate",)])
                reexports[(mod, name)] = child


def resolve(path):
    """The file that defines what `path` (module segments, then maybe a name) names."""
    for k in range(len(path), -1, -1):
        prefix = tuple(path[:k])
        if prefix in files:
            if k < len(path) and (prefix, path[k]) in reexports:
                child = reexports[(prefix, path[k])]
                target = resolve(list(child))
                if target is not None and target != prefix:
                    return target
            return prefix if k > 0 else None
    return None


def strip_tests(text):
    i = text.find("#[cfg(test)]")
    return text if i < 0 else text[:i]


edges = {m: set() for m in files}
for mod, p in files.items():
    text = strip_tests(open(p).read())
    text = re.sub(r"//[^\n]*", "", text)
    # expand `use a::{b, c::d}` groups
    for m in re.finditer(r"\b(crate|super)((?:::\w+)+)(::\{([^}]*)\})?", text):
        base = m.group(1)
        segs = [s for s in m.group(2).split("::") if s]
        heads = [segs]
        if m.group(4):
            heads = [segs + [x.strip().split("::")[0]] for x in m.group(4).split(",") if x.strip()]
        for h in heads:
            if base == "crate":
                start = []
            else:
                # `super` is the parent module, for a file and for a folder's mod.rs alike
                start = list(mod[:-1])
            target = resolve(start + h)
            if target is not None and target != mod and target != ():
                edges[mod].add(target)

cycles = []
state = {}
stack = []


def dfs(u):
    state[u] = 1
    stack.append(u)
    for v in sorted(edges[u]):
        if state.get(v, 0) == 0:
            dfs(v)
        elif state.get(v) == 1:
            cycles.append(stack[stack.index(v):] + [v])
    stack.pop()
    state[u] = 2


for m in sorted(files):
    if state.get(m, 0) == 0:
        dfs(m)
n_edges = sum(len(v) for v in edges.values())
print(f"{len(files)} files, {n_edges} import arrows, {len(cycles)} cycles")
for c in cycles:
    print("cycle: " + " -> ".join("/".join(x) or "lib" for x in c))
sys.exit(1 if cycles else 0)
