"""``evalq jobs``: list jobs; ``evalq jobs stop ID`` and ``evalq jobs delete ID`` for ops,
with the service's own rules (stop before delete; delete only an ended remote job)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from worker.cli.text import line, plain
from worker.cli.views import job_view
from worker.errors import EvalqError, RemoteConflict
from worker.jobs import moves
from worker.jobs.cancel import cancel_job
from worker.jobs.record import Job
from worker.jobs.states import JobState, Move
from worker.runtime.root import services

console = Console()

app = typer.Typer(
    help="List jobs, newest first; stop or delete one (ops).",
    invoke_without_command=True,
    no_args_is_help=False,
)

Producer = Annotated[
    str | None, typer.Option(help="the producer whose request_id it is (ids are per producer)")
]


@app.callback()
def jobs(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option(help="only jobs in this state")] = None,
    target: Annotated[str | None, typer.Option(help="only jobs of this target")] = None,
    limit: Annotated[int, typer.Option()] = 50,
    stalled: Annotated[
        bool, typer.Option("--stalled", help="only jobs whose timer keeps firing in vain")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON lines")] = False,
) -> None:
    """List jobs, newest first (stalled ones: most stalls first)."""
    if ctx.invoked_subcommand is not None:
        return
    store = services().store
    found: Iterable[Job] = store.iter_jobs()
    if stalled:
        at_least = services().settings.stall_alert_after
        stuck = (store.get(rid) for rid, _ in store.stalled_jobs(at_least, limit * 4))
        found = (job for job in stuck if job is not None)
    views = []
    for job in found:
        if (state and job.state != state.upper()) or (target and job.target != target):
            continue
        views.append(job_view(job))
        if len(views) >= limit:
            break
    if as_json:
        for view in views:
            print(json.dumps(view, sort_keys=True))
        return
    table = Table(
        "job_id", "target", "state", "remote", "progress", "batch_evaluation_id", "outcome"
    )
    columns = ("job_id", "target", "state", "remote_status", "progress",
               "batch_evaluation_id", "outcome_status")  # fmt: skip
    for v in views:
        table.add_row(*(plain(v[k] or "") for k in columns))
    console.print(table)


@app.command()
def stop(job_id: str, producer: Producer = None) -> None:
    """Stop a job (cancel it): one not started never starts, a running one's remote job
    is stopped (deleted where the service cannot stop one); its outcome is CANCELLED."""
    job = _find(job_id, producer)
    result = cancel_job(services(), job, "stopped by ops")
    console.print(line(f"{result.outcome}: ", plain(result.detail or "")))
    raise typer.Exit(0 if result.outcome != "not_cancellable" else 1)


@app.command()
def delete(job_id: str, producer: Producer = None) -> None:
    """Delete a job's remote job now, before its retention ends. The service deletes only
    an ended remote job: stop a running one first (``evalq jobs stop``)."""
    svc = services()
    job = _find(job_id, producer)
    if job.state == JobState.DELETED or (job.state == JobState.PUBLISHED
                                        and job.batch_evaluation_id is None):  # fmt: skip
        console.print("already deleted (or it never had a remote job)")
        return
    if job.state != JobState.PUBLISHED:
        why = {
            JobState.FINISHED: "its outcome is still being published: try again in a moment",
            JobState.DEAD: "it is dead-lettered: replay it (evalq dlq replay) or purge it",
        }.get(job.state, "its remote job has not ended: stop it first (evalq jobs stop ID); "
                         "the service refuses to delete a running job (409)")  # fmt: skip
        _fail(f"cannot delete a job in {job.state.value}: {why}")
    target = svc.targets[job.target]
    wait = target.rate_limits.acquire("delete")
    if wait > 0:
        _fail(f"the target's shared delete rate is spent: try again in {wait:.1f} s")
    assert job.batch_evaluation_id is not None
    try:
        if target.backend.capabilities.bulk_delete:
            target.backend.delete_many([(job.batch_evaluation_id, job.remote_scope or {})])
        else:
            target.backend.delete(job.batch_evaluation_id, job.remote_scope)
    except RemoteConflict as exc:
        _fail(f"the service refused (409): the remote job has not ended ({exc}); stop it "
              "first")  # fmt: skip
    except EvalqError as exc:
        _fail(f"the delete failed: {exc}")
    now = svc.clock()
    moves.move(svc, job, Move.DELETE, from_state=JobState.PUBLISHED, clear_due=True,
                         deleted_at=now, updated_at=now)  # fmt: skip
    console.print(line("deleted ", plain(job.batch_evaluation_id)))


def _find(job_id: str, producer: str | None) -> Job:
    job = services().store.find(job_id, producer)
    if job is None:
        _fail(f"no job {job_id!r}" + (f" of producer {producer!r}" if producer else ""))
    assert job is not None
    return job


def _fail(message: str) -> None:
    console.print(plain(message, "red"))
    raise typer.Exit(1)
