"""Fail when the modules of python/fastnn import each other in a cycle.

Only imports that run when a module is imported count (module level, including those under
`if` and `try`); an import inside a function runs later and is not an edge. The extension
modules (_core, _cuda) are leaves. Prints each cycle (a strongly connected component of the
import graph) and exits 1 if there is one.

    python scripts/check_import_cycles.py [python/fastnn]
"""

import ast
import pathlib
import sys


def modules(root):
    """{dotted name: path} for the package's Python modules, plus its extension modules."""
    mods = {}
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = p
    for ext in ("_core", "_cuda"):
        mods[f"{root.name}.{ext}"] = None
    return mods


def targets(mods, current, node):
    """The modules of `mods` that an import statement in `current` loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in mods]
    if node.level:
        is_pkg = mods[current] is not None and mods[current].name == "__init__.py"
        base = current if is_pkg else current.rpartition(".")[0]
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        if node.module:
            base = f"{base}.{node.module}"
    else:
        base = node.module or ""
    out = []
    for a in node.names:  # `from pkg import mod` loads pkg.mod; `from mod import name` loads mod
        sub = f"{base}.{a.name}"
        out.append(sub if sub in mods else base)
    return [m for m in out if m in mods]


def graph(mods):
    edges = {}
    for name, path in mods.items():
        edges[name] = set()
        if path is None:
            continue
        for top in ast.parse(path.read_text()).body:
            if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # runs when called (class bodies run at import, but import nothing here)
            for node in ast.walk(top):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    edges[name].update(t for t in targets(mods, name, node) if t != name)
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
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
    return out


def main(argv):
    root = pathlib.Path(argv[1] if len(argv) > 1 else "python/fastnn")
    edges = graph(modules(root))
    found = cycles(edges)
    for comp in found:
        print("import cycle: " + ", ".join(comp))
        for m in comp:
            print(f"  {m} imports {', '.join(sorted(e for e in edges[m] if e in comp))}")
    if not found:
        print(f"no import cycles among the {len(edges)} modules of {root}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
