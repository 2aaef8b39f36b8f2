"""``evalq dlq``: find, read, replay and purge dead letters."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Column, Table

from api_contracts import DeadLetter
from worker.cli.text import line, plain
from worker.dead_letters import replay as replays
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.store import JobStore
from worker.runtime.root import services
from worker.settings import get_settings

app = typer.Typer(
    help="Dead letters: requests evalq could not carry out, kept to inspect and replay.",
    no_args_is_help=True,
)
console = Console()

#: Most characters of a request ``show`` prints for people.
_SHOW_CHARS = 4000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` -> seconds."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 12h, 7d or 2w")
    return float(match[1]) * _UNIT_SECONDS[match[2]]


def parse_since(text: str, now: float) -> float:
    """An ISO 8601 time, or a duration meaning that long ago."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return now - parse_duration(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@app.command("list")
def list_entries(
    reason: Annotated[str | None, typer.Option(help="only this reason code")] = None,
    since: Annotated[
        str | None, typer.Option(help="failed since: ISO 8601 time or a duration (1h, 7d)")
    ] = None,
    limit: Annotated[int, typer.Option(help="show at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """List dead letters, most recent failure first."""
    dead_letters, _ = _stores()
    since_epoch = None if since is None else parse_since(since, time.time())
    letters = dead_letters.find(reason=reason, since=since_epoch, limit=limit)
    replaying = dead_letters.replaying()
    if as_json:
        for letter in letters:
            print(json.dumps(_view(letter, replaying), sort_keys=True))
        return
    table = Table(
        Column("dead_letter_id", no_wrap=True),  # whole, so it can be copied
        "reason",
        "request_id",
        "task",
        "attempts",
        "replays",
        "last failure",
        "state",
    )
    for d in letters:
        table.add_row(
            d.dead_letter_id,
            d.reason.value,
            plain(d.request_id or "-"),
            plain(d.task_name or "-"),
            str(d.attempts),
            str(d.replay_count),
            _iso(d.last_failed_at),
            "replaying" if d.dead_letter_id in replaying else "dead",
        )
    console.print(table)
    total = dead_letters.count()
    console.print(f"{len(letters)} shown, {total} in the store")


@app.command()
def show(
    dead_letter_id: Annotated[str, typer.Argument(help="id, or a unique start of one")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show one dead letter: why it failed and the original request."""
    dead_letters, _ = _stores()
    entry_id = dead_letters.resolve(dead_letter_id)
    letter = dead_letters.get(entry_id) if entry_id else None
    if letter is None:
        console.print(
            line(
                plain(f"no dead letter {dead_letter_id!r}", "red"),
                " (replayed and accepted, purged, or never there; `evalq dlq list` shows what is)",
            )
        )
        raise typer.Exit(1)
    view = _view(letter, dead_letters.replaying())
    if as_json:
        print(json.dumps(view, indent=2, sort_keys=True))
        return
    table = Table(show_header=False)
    for key in (
        "dead_letter_id",
        "reason",
        "state",
        "request_id",
        "task_name",
        "worker_host",
        "attempts",
        "replay_count",
        "first_failed_at",
        "last_failed_at",
    ):
        table.add_row(key, plain(view[key] if view[key] is not None else "-"))
    table.add_row("error", plain(letter.error))
    console.print(table)
    console.print("request:" if isinstance(letter.request, dict) else "request (raw body):")
    text = json.dumps(letter.request, indent=2) if isinstance(letter.request, dict) else None
    shown = text if text is not None else str(letter.request or "-")
    if len(shown) > _SHOW_CHARS:  # a raw body may be a megabyte; --json prints it all
        note = f"\n... ({len(shown) - _SHOW_CHARS} more characters; --json shows all)"
        shown = shown[:_SHOW_CHARS] + note
    if text is not None:  # JSON: every control character is an escape already
        console.print(Syntax(shown, "json"))
    else:
        console.print(plain(shown))


@app.command()
def replay(
    dead_letter_ids: Annotated[list[str] | None, typer.Argument(help="ids to replay")] = None,
    everything: Annotated[bool, typer.Option("--all", help="replay every entry")] = False,
    reason: Annotated[str | None, typer.Option(help="only entries of this reason")] = None,
    rate: Annotated[float | None, typer.Option(help="replays per second", min=0.01)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would be sent")] = (
        False
    ),
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Send dead-lettered requests through intake again.

    The same request_id means the same clientToken, so a request that already has a
    remote job never gets a second one. An entry leaves the store once intake accepted
    its request; if it fails again it returns with its replay count raised. Entries whose
    body never parsed cannot be replayed as they are."""
    if bool(dead_letter_ids) == everything:
        raise typer.BadParameter("give dead-letter ids or --all (not both)")
    dead_letters, jobs = _stores()
    settings = get_settings()
    candidates, missing = replays.select(
        dead_letters,
        jobs,
        ids=dead_letter_ids or (),
        everything=everything,
        reason=reason,
        until=time.time() if everything else None,
    )
    report = replays.replay(
        dead_letters,
        _send_replay,
        candidates,
        rate=rate or settings.dlq_replay_rate,
        dry_run=dry_run,
        skip_in_flight=everything,
    )
    report.missing = missing
    if as_json:
        print(json.dumps(report.as_dict(), sort_keys=True))
    else:
        _print_replay(report, {c.letter.dead_letter_id: c.letter for c in candidates})
    if not everything and (report.unreplayable or report.missing):
        raise typer.Exit(1)


@app.command()
def purge(
    dead_letter_ids: Annotated[list[str] | None, typer.Argument(help="ids to drop")] = None,
    everything: Annotated[bool, typer.Option("--all", help="drop every entry")] = False,
    older_than: Annotated[
        str | None, typer.Option(help="drop entries that last failed longer ago (7d, 12h)")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask before --all")] = False,
) -> None:
    """Drop dead letters for good."""
    if sum([bool(dead_letter_ids), everything, older_than is not None]) != 1:
        raise typer.BadParameter("give dead-letter ids, --all or --older-than (one of them)")
    dead_letters, _ = _stores()
    if everything and not yes:
        typer.confirm(f"Drop all {dead_letters.count()} dead letters?", abort=True)
    dropped, missing = replays.purge(
        dead_letters,
        ids=dead_letter_ids or (),
        everything=everything,
        older_than=None if older_than is None else parse_duration(older_than),
    )
    console.print(f"purged {dropped}")
    for asked in missing:
        console.print(plain(f"no dead letter {asked!r}", "yellow"))
    if missing:
        raise typer.Exit(1)


def _print_replay(report: Any, letters: dict[str, DeadLetter]) -> None:
    verb = "would replay" if report.dry_run else "replayed"
    for entry_id in report.replayed:
        letter = letters[entry_id]
        console.print(
            line(
                f"{verb} {entry_id} ({letter.reason.value}, request_id ",
                plain(letter.request_id or "-"),
                ")",
            )
        )
    for entry_id, why in report.unreplayable.items():
        console.print(
            line(
                (f"cannot replay {entry_id} as it is", "yellow"),
                ": ",
                plain(why),
                " (fix the message and send it again with `evalq submit`)",
            )
        )
    for entry_id in report.in_flight:
        console.print(f"skipped {entry_id}: a replay of it is already in flight")
    for asked in report.missing:
        console.print(plain(f"no dead letter {asked!r}", "red"))
    console.print(
        f"{verb} {len(report.replayed)}; cannot replay {len(report.unreplayable)} "
        f"(body never parsed, cut, or no request); in flight {len(report.in_flight)}; "
        f"not found {len(report.missing)}"
    )
    if report.replayed and not report.dry_run:
        console.print(
            "each entry leaves the store once intake accepts its request; follow the job "
            "with `evalq status REQUEST_ID`"
        )


def _send_replay(request: dict[str, Any], headers: dict[str, str]) -> None:
    from worker.runtime.app import send_replay  # imported late: the app is not cheap

    send_replay(request, headers)


def _stores() -> tuple[DeadLetterStore, JobStore]:
    svc = services()
    return svc.dead_letters, svc.store


def _view(letter: DeadLetter, replaying: dict[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = letter.model_dump(mode="json")
    view["state"] = "replaying" if letter.dead_letter_id in replaying else "dead"
    return view


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
