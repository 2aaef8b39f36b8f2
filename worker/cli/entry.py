"""The ``evalq`` console entry: ``evalq health`` runs before the rest is imported.

Probes run ``evalq health`` every few seconds in every pod; importing the CLI (typer,
rich, pydantic, Celery's app) would cost them several times the check itself.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["health"]:
        from worker.observability.health import main as health

        sys.exit(health(sys.argv[2:]))
    from worker.cli.main import app

    app(prog_name="evalq")
