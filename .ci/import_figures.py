"""Figures of worker/'s import graph (issue 22, item 4): modules, non-blank lines, the
largest module, import cycles at module and package level, and package-level edges that
point up the layers of pyproject.toml's import-linter contract.

    python .ci/import_figures.py [SOURCE_ROOT] [--pyproject PATH]

SOURCE_ROOT (default: the current directory) holds ``worker/``; the layers are read from
``PATH`` (default: SOURCE_ROOT/pyproject.toml), so an older tree can be measured against
today's contract. Every import counts, those inside functions included (grimp's graph).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp


def layers_of(pyproject: Path) -> dict[str, int]:
    """Each top-level part of ``worker`` and its layer's rank (0: the bottom)."""
    config = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["type"] == "layers")
    rank: dict[str, int] = {}
    for index, layer in enumerate(reversed(contract["layers"])):
        for name in layer.replace("|", ":").split(":"):
            rank[name.strip()] = index
    return rank


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """Tarjan's components of more than one node (each is an import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def part(module: str) -> str:
    """``worker.jobs.store`` -> ``jobs``; ``worker.keys`` -> ``keys``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else pieces[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", nargs="?", default=".", type=Path)
    parser.add_argument("--pyproject", type=Path)
    args = parser.parse_args()
    root: Path = args.root.resolve()
    sys.path.insert(0, str(root))
    rank = layers_of(args.pyproject or root / "pyproject.toml")

    files = sorted((root / "worker").rglob("*.py"))
    lines = {
        f.relative_to(root).as_posix(): sum(1 for x in f.read_text().splitlines() if x.strip())
        for f in files
    }
    largest = max(lines, key=lambda name: lines[name])

    graph = grimp.build_graph("worker", cache_dir=None)
    modules = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    packages: dict[str, set[str]] = {}
    for importer, imported in modules.items():
        for target in imported:
            a, b = part(importer), part(target)
            if a != b and a != "worker" and b != "worker":
                packages.setdefault(a, set()).add(b)
    module_cycles = strongly_connected(modules)
    package_cycles = strongly_connected(packages)
    unranked = sorted({p for p in packages} | {q for qs in packages.values() for q in qs})
    unranked = [p for p in unranked if p not in rank]
    upward = sorted(
        (a, b)
        for a, targets in packages.items()
        for b in targets
        if a in rank and b in rank and rank[a] < rank[b]
    )

    print(f"modules in worker/: {len(files)}")
    print(f"non-blank lines in worker/: {sum(lines.values())}")
    print(f"largest module: {largest}, {lines[largest]} non-blank lines")
    print(
        f"module-level import cycles: {len(module_cycles)} "
        f"({sum(len(c) for c in module_cycles)} modules)"
    )
    for cycle in module_cycles:
        print("   ", " ".join(sorted(cycle)))
    print(f"package-level import cycles: {len(package_cycles)}")
    for cycle in package_cycles:
        print("   ", " ".join(sorted(cycle)))
    print(f"package-level edges that point up the layers: {len(upward)}")
    for a, b in upward:
        print(f"    {a} -> {b}")
    for name in unranked:
        print(f"in no layer: {name}, which imports {' '.join(sorted(packages.get(name, ())))}")


if __name__ == "__main__":
    main()
