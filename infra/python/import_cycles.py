#!/usr/bin/env python3
"""File-level import cycles in the workspace's Rust crates (issue 11: "no module imports one that
imports it back").

For every crate (a directory with Cargo.toml and src/), each `.rs` file under src/ is a node. An
edge A -> B means A names a path that resolves into file B: `use crate::…`, `use super::…`,
`use self::…` (use trees with braces are expanded) and inline `crate::a::b::f()` paths. `mod x;`
declarations are not edges (a parent owning a child is not an import). A path resolves to the
longest prefix that is a file: `crate::a::b::C` -> src/a/b.rs, src/a/b/mod.rs, src/a.rs, …

Prints every cycle found (one strongly connected component per line) and exits 1 if any.
Usage: import_cycles.py [workspace-root]
"""

import os
import re
import sys

USE_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M | re.S)
INLINE_RE = re.compile(r"(?<![\w:])(crate|super)((?:::\w+)+)")
COMMENT_RE = re.compile(r"//[^\n]*")


def expand(tree):
    """Expand a use tree `a::{b, c::{d, e}}` into flat paths."""
    tree = re.sub(r"\s+", "", tree)
    tree = re.sub(r"\bas\w+", "", tree)
    out = []

    def walk(prefix, s):
        # split s at top-level commas
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
        for p in parts:
            if not p:
                continue
            if "{" in p:
                head, rest = p.split("{", 1)
                walk(prefix + head, rest[:-1] if rest.endswith("}") else rest)
            else:
                out.append(prefix + p)

    walk("", tree)
    return out


def module_of(src, path):
    """The module path (list of names) of a file under src/."""
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return rel


def resolve(src, files_by_mod, current_mod, segments):
    """The file a path (segments after crate/super/self handling) lands in, or None."""
    for n in range(len(segments), -1, -1):
        key = tuple(segments[:n])
        if key in files_by_mod:
            return files_by_mod[key]
    return None


def crate_edges(src):
    files = []
    for root, _dirs, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                files.append(os.path.join(root, name))
    files_by_mod = {}
    for f in files:
        base = os.path.basename(f)
        if base == "main.rs" and os.path.exists(os.path.join(src, "lib.rs")) and os.path.dirname(f) == src:
            continue  # the binary root is its own crate
        files_by_mod.setdefault(tuple(module_of(src, f)), f)
    edges = {f: set() for f in files_by_mod.values()}
    for f in files_by_mod.values():
        with open(f, encoding="utf-8") as fh:
            text = COMMENT_RE.sub("", fh.read())
        mod = module_of(src, f)
        is_dir_mod = os.path.basename(f) in ("mod.rs", "lib.rs", "main.rs")
        paths = []
        for m in USE_RE.finditer(text):
            paths.extend(expand(m.group(1)))
        for m in INLINE_RE.finditer(text):
            paths.append(m.group(1) + m.group(2))
        for p in paths:
            segs = [s for s in p.split("::") if s]
            if not segs:
                continue
            if segs[0] == "crate":
                target = segs[1:]
            elif segs[0] in ("super", "self"):
                # the module this file is, then walk up for each super
                here = list(mod) if is_dir_mod else list(mod)
                i = 0
                while i < len(segs) and segs[i] in ("super", "self"):
                    if segs[i] == "super":
                        here = here[:-1]
                    i += 1
                target = here + segs[i:]
            else:
                continue
            dest = resolve(src, files_by_mod, mod, target)
            if dest and dest != f:
                edges[f].add(dest)
    return edges


def sccs(edges):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    return out


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
    found = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git", ".venv", "node_modules")]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            src = os.path.join(dirpath, "src")
            for comp in sccs(crate_edges(src)):
                found += 1
                print("cycle:", " <-> ".join(os.path.relpath(c, root) for c in comp))
    if found:
        print(f"{found} import cycle(s)")
        sys.exit(1)
    print("no file-level import cycles")


if __name__ == "__main__":
    main()
