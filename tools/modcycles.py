#!/usr/bin/env python3
"""Lists import cycles between the modules of a Rust crate's src/ and exits 1
when there is one (make test runs it).

A node is a file module (src/a/b.rs or src/a/b/mod.rs is `a/b`); an edge A -> B
is a `use` or a path (`crate::`, `super::`, `self::`, or a child's name) in A
that resolves to B. A module reaching into its own submodules is not an edge
(they are its parts); a submodule using its parent is. `#[cfg(test)]` modules
inline in a file are left out: they are not part of what ships. Also checks
the top-level modules (api, plan, ...) as whole units.

    tools/modcycles.py [SRC_DIR]        (default: src)
"""
import collections
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else 'src'
mods = {}  # module path tuple -> file
for dp, dn, fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)[:-3].split(os.sep)
        if rel[-1] == 'mod': rel = rel[:-1]
        if rel in (['lib'], ['main']): rel = [] if rel == ['lib'] else ['main']
        mods[tuple(rel)] = p
def strip(src):
    out = []; i = 0; n = len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i); i = n if j < 0 else j; continue
        if src.startswith('/*', i):
            j = src.find('*/', i); i = n if j < 0 else j + 2; continue
        m = re.match(r'b?r(#*)"', src[i:i+10])
        if m and (i == 0 or not (src[i-1].isalnum() or src[i-1] == '_')):
            end = '"' + m.group(1); j = src.find(end, i + len(m.group(0))); i = n if j < 0 else j + len(end); out.append('""'); continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == '\\' else 1
            i = j + 1; out.append('""'); continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^'\\])'", src[i:i+12])
            if m: i += len(m.group(0)); out.append("' '"); continue
        out.append(c); i += 1
    s = ''.join(out)
    # cfg(test) modules are not part of the shipped graph; their `super` is the file
    while True:
        m = re.search(r'#\[cfg\(test\)\]\s*mod\s+\w+\s*\{', s)
        if not m: break
        depth = 0; j = m.end() - 1
        while j < len(s):
            if s[j] == '{': depth += 1
            elif s[j] == '}':
                depth -= 1
                if depth == 0: break
            j += 1
        s = s[:m.start()] + s[j+1:]
    return s
def expand_use(body):
    # expand a use tree like a::{b, c::{d, e}} into paths
    body = body.strip()
    out = []
    def rec(prefix, s):
        s = s.strip()
        if not s: return
        m = re.match(r'^([\w:]*?)(::)?\{(.*)\}$', s, re.S)
        if m and s.endswith('}'):
            pre = m.group(1)
            inner = m.group(3)
            depth = 0; cur = ''; parts = []
            for ch in inner:
                if ch == '{': depth += 1
                if ch == '}': depth -= 1
                if ch == ',' and depth == 0: parts.append(cur); cur = ''
                else: cur += ch
            parts.append(cur)
            for p in parts: rec(prefix + ([x for x in pre.split('::') if x] ), p)
        else:
            s = re.sub(r'\s+as\s+\w+$', '', s)
            out.append(prefix + [x for x in s.split('::') if x])
    rec([], body)
    return out
def resolve(cur, path):
    # cur: module tuple of the file; path: list of segments
    if not path: return None
    if path[0] == 'crate': base = []; rest = path[1:]
    elif path[0] == 'super':
        base = list(cur); rest = path
        while rest and rest[0] == 'super': base = base[:-1]; rest = rest[1:]
    elif path[0] == 'self': base = list(cur); rest = path[1:]
    else:
        # relative to current module (child modules)
        base = list(cur); rest = path
        if tuple(base + rest[:1]) not in mods: return None
    best = tuple(base) if tuple(base) in mods else None
    for i in range(1, len(rest) + 1):
        t = tuple(base + rest[:i])
        if t in mods: best = t
        else: break
    return best
edges = collections.defaultdict(set)
for m, f in mods.items():
    src = strip(open(f).read())
    # drop #[cfg(test)] mod tests { ... } blocks crudely: file-level tests modules are separate files
    paths = []
    for u in re.finditer(r'\buse\s+([^;]+);', src):
        paths += expand_use(u.group(1))
    for u in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', src):
        paths.append(u.group(1).split('::'))
    for p in paths:
        t = resolve(m, p)
        if t is not None and t != m and m not in [t[:len(m)]] or (t is not None and t != m and len(t) <= len(m)):
            if t != m: edges[m].add(t)
def name(t):
    return '/'.join(t) or 'crate'


def sccs_of(nodes, graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


top = collections.defaultdict(set)
for a, bs in edges.items():
    for b in bs:
        if a and b and a[0] != b[0]:
            top[a[0]].add(b[0])

found = 0
for comp in sccs_of(list(mods), edges):
    found += 1
    members = set(comp)
    print('cycle between modules:', ', '.join(sorted(name(x) for x in comp)))
    for a in sorted(comp):
        for b in sorted(edges[a]):
            if b in members:
                print('   ', name(a), '->', name(b))
for comp in sccs_of({m[0] for m in mods if m}, top):
    found += 1
    members = set(comp)
    print('cycle between top-level modules:', ', '.join(sorted(comp)))
    for a, bs in sorted(edges.items()):
        for b in sorted(bs):
            if a and b and a[0] != b[0] and a[0] in members and b[0] in members:
                print('   ', name(a), '->', name(b))
if found:
    sys.exit(1)
print(f'modcycles: {len(mods)} modules under {root}, no import cycles')
for a in sorted(top):
    print('   ', a, '->', ', '.join(sorted(top[a])))
