"""docs/architecture.md's layer diagram is the import-linter contract in pyproject.toml
(`lint-imports`, run by `make lint`, enforces the contract; this test keeps the drawing
true to it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The block that follows this line in docs/architecture.md is the drawing.
DIAGRAM_HEADING = "Layers, top first (drawn from pyproject.toml's import-linter contract):"


def contract() -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def draw(layers: list[str]) -> str:
    """The diagram of ``layers`` (top first), as docs/architecture.md holds it."""
    lines: list[str] = []
    for layer in layers:
        if lines:
            lines.append("  ▼")
        lines.append(layer)
    return "\n".join(lines)


def drawn_in_docs() -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    found = re.search(re.escape(DIAGRAM_HEADING) + r"\n\n```\n(.*?)\n```", text, re.S)
    assert found, f"docs/architecture.md has no block after {DIAGRAM_HEADING!r}"
    return found.group(1)


def test_the_architecture_diagram_is_the_layers_contract():
    layers = contract()["worker's layers"]
    assert layers["containers"] == ["worker"]
    assert drawn_in_docs() == draw(layers["layers"]), (
        "docs/architecture.md's layer diagram differs from pyproject.toml's contract; "
        "draw it as:\n" + draw(layers["layers"])
    )


def test_every_part_of_worker_is_in_one_layer():
    """The layers contract is exhaustive; the diagram names every package and top-level
    module of worker/ exactly once."""
    layers = contract()["worker's layers"]
    assert layers.get("exhaustive") is True
    named = [n.strip() for layer in layers["layers"] for n in re.split(r"[|:]", layer)]
    parts = {p.stem for p in (ROOT / "worker").glob("*.py") if p.stem != "__init__"}
    parts |= {p.parent.name for p in (ROOT / "worker").glob("*/__init__.py")}
    assert sorted(named) == sorted(parts)


def test_cycles_anywhere_fail_the_lint():
    """A cycle fails `make lint`: between packages, between modules of one package, inside
    functions included (grimp sees every import)."""
    cycles = contract()["no import cycles"]
    assert cycles["type"] == "acyclic_siblings"
    assert cycles["ancestors"] == ["worker"]
    lint = (ROOT / "Makefile").read_text().split("\nlint:")[1].split("\n\n")[0]
    assert "lint-imports" in lint
