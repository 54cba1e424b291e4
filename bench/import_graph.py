"""The project's import graph: module sizes, import cycles and upward imports.

Run:  .venv/bin/python bench/import_graph.py [--json]

Reads every module of bisect_driver/, build_recipes/ and probes/ with ``ast``
(imports anywhere in a module count, also those inside functions) and prints:
the modules by size, the strongly connected components of the module graph
and of the package graph (bisect_driver's subpackages and top-level modules,
build_recipes, probes), and every "upward" import: a plug-in package
importing anything of bisect_driver other than its plug-in layer
(bisect_driver.plugin), or bisect_driver importing a plug-in package by path.
tests/test_quality.py asserts there are no cycles and no upward imports.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bisect_driver", "build_recipes", "probes")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            out[module_name(path)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # `from pkg import submodule` imports the submodule (and runs pkg's
            # __init__, which is not a dependency on pkg's other contents).
            subs = [f"{mod}.{a.name}" for a in node.names]
            targets = [s if s in known else mod for s in subs]
        for t in targets:
            # the longest known module that t names (a module, or a name inside one)
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def package_of(module: str) -> str:
    """bisect_driver.<subpackage or top-level module>, or the plug-in package."""
    parts = module.split(".")
    if parts[0] != "bisect_driver":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 else "bisect_driver"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, dests in sorted(graph.items()):
        for dst in sorted(dests):
            plugin_pkg = src.split(".")[0] in ("build_recipes", "probes")
            if (
                plugin_pkg
                and dst.startswith("bisect_driver")
                and not (dst == "bisect_driver" or dst.startswith("bisect_driver.plugin"))
            ):
                bad.append(f"{src} -> {dst}")
            driver_to_plugin = src.startswith("bisect_driver") and dst.split(".")[0] in (
                "build_recipes",
                "probes",
            )
            if driver_to_plugin:
                bad.append(f"{src} -> {dst}")
            if src.startswith("bisect_driver.plugin") and not dst.startswith(
                "bisect_driver.plugin"
            ):
                bad.append(f"{src} -> {dst} (the plug-in layer must stay a leaf)")
    return bad


def analyse() -> dict[str, object]:
    mods = modules()
    known = set(mods)
    graph = {name: imports_of(name, path, known) for name, path in mods.items()}
    pkg_graph: dict[str, set[str]] = {}
    for src, dests in graph.items():
        for dst in dests:
            a, b = package_of(src), package_of(dst)
            if a != b and not b.startswith(a + "."):
                pkg_graph.setdefault(a, set()).add(b)
    sizes = {n: len(p.read_text().splitlines()) for n, p in mods.items()}
    return {
        "modules": len(mods),
        "lines": sum(sizes.values()),
        "largest": sorted(sizes.items(), key=lambda kv: -kv[1])[:10],
        "module_cycles": cycles(graph),
        "package_cycles": cycles(pkg_graph),
        "upward_imports": upward(graph),
        "packages": {k: sorted(v) for k, v in sorted(pkg_graph.items())},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print the analysis as JSON")
    args = ap.parse_args()
    data = analyse()
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    print(f"{data['modules']} modules, {data['lines']} lines")
    print("largest: " + ", ".join(f"{n} {s}" for n, s in data["largest"]))  # type: ignore[attr-defined]
    print(f"module cycles: {data['module_cycles'] or 'none'}")
    print(f"package cycles: {data['package_cycles'] or 'none'}")
    print(f"upward imports: {data['upward_imports'] or 'none'}")
    for pkg, deps in data["packages"].items():  # type: ignore[attr-defined]
        print(f"  {pkg} -> {', '.join(deps)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
