"""``evalq emulator``, and where it and ``evalq demo`` find the emulators: evalq-emulators,
the distribution of evalq's test tooling (``emulators/`` in evalq's repository), which is
never part of evalq's wheel or image. Nothing here imports it."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import typer
from rich.console import Console

#: What to do when evalq-emulators is not installed.
INSTALL_HINT = (
    "the emulators are the evalq-emulators distribution, which is not installed here. "
    "From a clone of evalq: pip install ./emulators (the .venv that make builds has it); "
    "as a container: docker build --target emulator -f deploy/Dockerfile ."
)


def emulator_main() -> Callable[..., Any] | None:
    """``evalq-emulator``'s function (evalq-emulators' console script), if installed."""
    for entry_point in entry_points(group="console_scripts", name="evalq-emulator"):
        loaded: Callable[..., Any] = entry_point.load()
        return loaded
    return None


def emulator(ctx: typer.Context) -> None:
    """Serve a remote service's API locally (evalq-emulators' evalq-emulator):
    [--service agentcore|aymara|agno] --port N --time-scale X; --help lists the rest."""
    run = emulator_main()
    if run is None:
        Console(stderr=True).print(f"evalq emulator: {INSTALL_HINT}", style="red", markup=False)
        raise typer.Exit(1)
    run(list(ctx.args), prog="evalq emulator")
