#!/usr/bin/env python3
"""layers: src/ folders depend only downwards.

An edge A -> B when a file under src/A includes a header under src/B or calls
a function that only src/B defines (the same rule as the project's
layer-cycles tool).  The layers, lowest first, are the README's:
util, mm, migrate, pagemap, gpusvm, policy, device, cli, and dmirror (the
LD_PRELOAD library) beside cli at the top.  Every edge must go to a
lower layer (so there is no cycle either).  Usage: layers.py ROOT"""
import os, re, sys

ORDER = ["util", "mm", "migrate", "pagemap", "gpusvm", "policy", "device", "cli", "dmirror"]
# C library functions a preload library (dmirror) defines to interpose on:
# a call to them is a call into the C library, not into that folder.
LIBC = {"open", "open64", "openat", "openat64", "__open_2", "__open64_2", "__openat_2",
        "__openat64_2", "ioctl", "close", "fork", "vfork", "mmap", "mmap64", "munmap",
        "read", "write", "dup", "dup2", "dup3", "fcntl", "_exit", "exit"}
root = sys.argv[1] if len(sys.argv) > 1 else "."
src = os.path.join(root, "src")


def folder(path):
    rel = os.path.relpath(path, src).split(os.sep)
    return rel[0] if len(rel) > 1 else "."


files = [os.path.join(d, f) for d, _, fs in os.walk(src) for f in fs if f.endswith((".c", ".h"))]
text = {f: open(f, errors="replace").read() for f in files}
defs = {}
local = {}  # every function a file defines, static ones included
for f, t in text.items():
    if f.endswith(".c"):
        for m in re.finditer(r"^(?!static)[A-Za-z_][\w \*]*?\b([a-z_]\w*)\s*\([^;{]*\)\s*\{", t, re.M):
            defs.setdefault(m.group(1), set()).add(folder(f))
    local[f] = set(re.findall(r"^[A-Za-z_][\w \*]*?\b([a-z_]\w*)\s*\([^;{]*\)\s*\{", t, re.M))
edges = {}
for f, t in text.items():
    a = folder(f)
    for inc in re.findall(r'#include\s+"([^"]+)"', t):
        for g in files:
            if g.endswith(os.sep + inc) or os.path.relpath(g, src) == inc:
                if folder(g) != a:
                    edges.setdefault((a, folder(g)), f)
    for name in set(re.findall(r"\b([a-z_]\w*)\s*\(", t)) - local.get(f, set()) - LIBC:
        owners = defs.get(name, set())
        if len(owners) == 1 and next(iter(owners)) != a:
            edges.setdefault((a, next(iter(owners))), "%s calls %s()" % (f, name))

bad = 0
for (a, b), why in sorted(edges.items()):
    if a == "." or b == ".":
        continue
    if a not in ORDER or b not in ORDER:
        print("layers: FAIL: folder %s or %s is not in the documented order %s" % (a, b, ORDER))
        bad += 1
    elif ORDER.index(b) >= ORDER.index(a):
        print("layers: FAIL: %s depends on %s, a layer above it (%s)" % (a, b, why))
        bad += 1
print("layers: %d edges between %d folders, %d upward" %
      (len(edges), len({x for e in edges for x in e}), bad))
sys.exit(1 if bad else 0)
