"""``evalq schedules``: evalq's own schedules, their slots and their jobs; ``evalq schedules
run NAME`` submits one now, outside its slots (docs/schedules.md)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from worker.cli.text import line, plain
from worker.schedules.config import Schedule, ScheduleSet, load_schedules
from worker.schedules.slots import Cron, Every, manual_request_id, utc_iso
from worker.schedules.state import Record, ScheduleState
from worker.settings import Settings

app = typer.Typer(help="evalq's own schedules (docs/schedules.md).", add_completion=False)
console = Console()


@app.callback(invoke_without_command=True)
def schedules(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
) -> None:
    """Each schedule of EVALQ_SCHEDULES_FILE: its next slot, its last slot submitted and
    that job's state; each refused entry with why. Exits 1 if the file refuses any."""
    if ctx.invoked_subcommand is not None:
        return
    from worker.runtime.root import services

    svc = services()
    found = _load(svc.settings)
    records = ScheduleState(svc.redis, svc.keys).read(s.name for s in found.schedules)
    views = [_view(s, records[s.name], svc.clock()) for s in found.schedules]
    for view in views:
        job = svc.store.get(view["last_job_id"]) if view["last_job_id"] else None
        view["job_state"] = None if job is None else job.state.value
        view["outcome_status"] = None if job is None else job.outcome_status
    refused = [{"entry": entry, "error": error} for entry, error in found.errors.items()]
    if as_json:
        for item in [*views, *refused]:
            print(json.dumps(item, sort_keys=True))
    else:
        _print(views, refused)
    if refused:
        raise typer.Exit(1)


@app.command()
def run(name: Annotated[str, typer.Argument(help="the schedule's name")]) -> None:
    """Submit a schedule's request now, outside its slots, by evals.submit on the requests
    queue; its request id says so: NAME-manual-<UTC time> (one per second)."""
    from worker.runtime.app import send_to_intake
    from worker.runtime.root import services

    found = _load(services().settings)
    schedule = found.get(name)
    if schedule is None:
        why = next((e for entry, e in found.errors.items() if entry.endswith(f" {name}")), None)
        known = ", ".join(s.name for s in found.schedules) or "none"
        because = (": ", plain(why)) if why else (" (have: ", plain(known), ")")
        console.print(line(("no schedule ", "red"), plain(repr(name)), " in force", *because))
        raise typer.Exit(1)
    now = time.time()
    request = schedule.request_for(manual_request_id(name, now), utc_iso(now))
    send_to_intake(request)
    request_id, producer = request["request_id"], schedule.producer
    console.print(line("sent ", plain(request_id), " (see: evalq status ", plain(request_id),
                       " --producer ", plain(producer), ")"))  # fmt: skip


def _load(settings: Settings) -> ScheduleSet:
    path = settings.schedules_file
    if path is None:
        console.print("[red]EVALQ_SCHEDULES_FILE is not set: evalq runs no schedules[/red]")
        raise typer.Exit(1)
    try:
        return load_schedules(path)
    except (OSError, ValueError) as exc:
        console.print(line(("schedules file refused: ", "red"), plain(exc)))
        raise typer.Exit(1) from None


def _view(schedule: Schedule, record: Record, now: float) -> dict[str, Any]:
    spec = schedule.spec
    timing = f"every {spec.seconds}s" if isinstance(spec, Every) else ""
    if isinstance(spec, Cron):
        timing = f"cron {spec.expression} ({spec.zone})"
    upcoming = spec.next_after(now)
    return {
        "name": schedule.name,
        "timing": timing,
        "catch_up": schedule.catch_up.value,
        "producer": schedule.producer,
        "next_slot": None if upcoming is None else utc_iso(upcoming),
        "last_slot": None if record.last_slot is None else utc_iso(record.last_slot),
        "last_request_id": record.last_request_id,
        "last_job_id": record.last_job_id,
        "last_outcome": record.last_outcome,
        "pending": len(record.pending or {}),
    }


def _print(views: list[dict[str, Any]], refused: list[dict[str, str]]) -> None:
    table = Table("schedule", "timing", "catch_up", "next slot", "last slot", "job state",
                  "outcome")  # fmt: skip
    for v in views:
        state = v["job_state"] or (v["last_outcome"] if v["last_slot"] else "")
        table.add_row(*(plain(x or "") for x in (v["name"], v["timing"], v["catch_up"],
                        v["next_slot"], v["last_slot"], state, v["outcome_status"])))  # fmt: skip
    console.print(table)
    for item in refused:
        console.print(line(("refused ", "red"), plain(item["entry"]), ": ", plain(item["error"])))
