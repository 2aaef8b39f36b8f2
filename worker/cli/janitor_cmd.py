"""``evalq janitor``: run one janitor sweep now, or show what a sweep would do."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from worker.cli.text import line, plain

if TYPE_CHECKING:
    from worker.janitor.sweep import Report

console = Console()

#: Ids shown per action in the table (``--json`` has them all).
_SHOWN_IDS = 5


def janitor(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="plan only: show what a sweep would do")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Run one janitor sweep now: expire overdue backlog entries, re-arm lost timers, trim
    old records, reconcile with the remote account, delete early when it nears its quota.
    Follow-up steps (outcomes, deletes after a cut retention) go to the running workers."""
    from worker.janitor.sweep import sweep
    from worker.runtime.root import services

    report = sweep(services(), dry_run=dry_run)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        _print(report)
    if report.skipped:
        raise typer.Exit(1)


def _print(report: Report) -> None:
    if report.skipped:
        console.print("[yellow]another janitor is sweeping now; nothing done[/yellow]")
        return
    title = "janitor plan (dry run: nothing done)" if report.dry_run else "janitor sweep"
    table = Table("action", "count", "ids", title=title)
    for name, ids in [*report.done.items(), ("deferred", report.deferred)]:
        shown = ", ".join(ids[:_SHOWN_IDS]) + (" ..." if len(ids) > _SHOWN_IDS else "")
        table.add_row(name, str(len(ids)), plain(shown))
    console.print(table)
    remote = "not listed" if report.remote_jobs is None else str(report.remote_jobs)
    console.print(f"remote jobs in the account: {remote}")
    for note in report.notes:
        console.print(line("note: ", plain(note)))
