#!/usr/bin/env python3
"""Collect real English text unlike WordNet, for out-of-domain evaluation only (never
training, never a bank): the one-line `description` of every crate in Cargo.lock (short
technical summaries, from the crates.io registry that `cargo fetch` fills) and the first
sentence of the docstrings of Python's standard library (PSF licence).

Usage: python3 scripts/ood_texts.py OUT.txt [N_PER_SOURCE]
Deterministic for a given Cargo.lock and Python version (sorted, then a seeded sample).
"""
import glob
import importlib
import inspect
import os
import pkgutil
import random
import re
import sys
import tomllib
import warnings


def clean(text):
    text = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    text = (m.group(1) if m else text).strip()
    ok = 20 <= len(text) <= 160 and text.isascii() and len(text.split()) >= 4
    bad = any(c in text for c in "`{}<>|_=[]\\") or "http" in text or ">>>" in text
    return text if ok and not bad else None


def crate_descriptions():
    lock = tomllib.load(open(os.path.join(os.path.dirname(__file__), "..", "Cargo.lock"), "rb"))
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    out = set()
    for pkg in lock["package"]:
        for path in glob.glob(f"{home}/registry/src/*/{pkg['name']}-{pkg['version']}/Cargo.toml"):
            try:
                desc = tomllib.load(open(path, "rb")).get("package", {}).get("description")
            except Exception:
                continue
            if isinstance(desc, str) and (t := clean(desc)):
                out.add(t)
    return sorted(out)


def stdlib_docstrings():
    warnings.simplefilter("ignore")
    out = set()
    names = sorted(m.name for m in pkgutil.iter_modules() if m.module_finder.path.startswith(
        os.path.dirname(os.__file__)) and not m.name.startswith(("_", "test", "idlelib", "tkinter",
                                                                "turtle", "antigravity", "this")))
    for name in names:
        try:
            mod = importlib.import_module(name)
        except BaseException:
            continue
        for obj in [mod] + [v for _, v in sorted(vars(mod).items()) if inspect.isfunction(v)
                            or inspect.isclass(v)]:
            doc = inspect.getdoc(obj) if getattr(obj, "__module__", name) == name or obj is mod else None
            if doc and (t := clean(doc.split("\n\n")[0])):
                out.add(t)
    return sorted(out)


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 250
    rng = random.Random(2026)
    texts = []
    for source in (crate_descriptions(), stdlib_docstrings()):
        print(f"{len(source)} candidates", file=sys.stderr)
        texts += rng.sample(source, min(n, len(source)))
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {len(texts)} lines to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
