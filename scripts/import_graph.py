#!/usr/bin/env python3
"""Import graph of each crate's source files: which file names which (through `crate::` and
`super::` paths, in `use` lines and inline), and any cycle between files. The crates are the
library (`src/lib.rs`) and each binary (`src/bin/NAME/main.rs` or `src/bin/NAME.rs`), each
checked on its own since `crate::` means its own root there. Also checks the file sizes: no
library file over 600 lines, no binary file over 400 (tests included).

Usage: python3 scripts/import_graph.py [--strict-sizes] [src]
  exit 1 when a cycle exists, or with --strict-sizes when a file is too long (else reported)
"""
import os
import re
import sys

MAX_LIB_LINES = 600
MAX_BIN_LINES = 400


def crate_files(root, root_file):
    """Module path -> file, for the crate whose root file is `root_file` inside `root`."""
    files = {}
    for d, _, names in os.walk(root):
        if root_file == "lib" and os.path.relpath(d, root).split(os.sep)[0] == "bin":
            continue
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(d, n)
                rel = os.path.relpath(p, root)[:-3].split(os.sep)
                if rel[-1] == "mod":
                    rel = rel[:-1]
                if rel == [root_file]:
                    rel = []
                files[tuple(rel)] = p
    return files


def check(files):
    """The import arrows and cycles between `files`."""
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
    return sum(len(v) for v in edges.values()), cycles


args = sys.argv[1:]
strict_sizes = "--strict-sizes" in args
args = [a for a in args if a != "--strict-sizes"]
root = args[0] if args else "src"
crates = [("library", crate_files(root, "lib"), MAX_LIB_LINES)]
bin_dir = os.path.join(root, "bin")
for name in sorted(os.listdir(bin_dir)) if os.path.isdir(bin_dir) else []:
    path = os.path.join(bin_dir, name)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "main.rs")):
        crates.append((f"bin {name}", crate_files(path, "main"), MAX_BIN_LINES))
    elif name.endswith(".rs"):
        crates.append((f"bin {name[:-3]}", {(): path}, MAX_BIN_LINES))
failed = False
for label, files, limit in crates:
    n_edges, cycles = check(files)
    print(f"{label}: {len(files)} files, {n_edges} import arrows, {len(cycles)} cycles")
    for c in cycles:
        print("  cycle: " + " -> ".join("/".join(x) or "root" for x in c))
    long = sorted((sum(1 for _ in open(p)), p) for p in files.values())
    for n, p in long:
        if n > limit:
            print(f"  too long: {p} has {n} lines (at most {limit})")
    failed |= bool(cycles) or (strict_sizes and any(n > limit for n, _ in long))
sys.exit(1 if failed else 0)
