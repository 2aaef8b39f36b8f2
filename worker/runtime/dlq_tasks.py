"""Dead-letter operations as Celery tasks, for automation (``evals.dlq.replay``/``purge``).

They run on the control queue and do what ``evalq dlq replay|purge`` do. A long replay is
cut into runs of at most ``RUN_SECONDS`` (a task must stay short: its message is
redelivered after the visibility timeout); each run sends the next one for the rest.
"""

from __future__ import annotations

from typing import Any

from worker import task_names
from worker.dead_letters import replay
from worker.runtime.app import app, send_replay
from worker.runtime.root import services

#: Longest one replay task runs before it hands the rest to the next.
RUN_SECONDS = 10.0


@app.task(name=task_names.DLQ_REPLAY)
def replay_dead_letters(
    ids: list[str] | None = None,
    everything: bool = False,
    reason: str | None = None,
    rate: float | None = None,
    dry_run: bool = False,
    until: float | None = None,
) -> dict[str, Any]:
    """Replay the given entries, or every entry (of ``reason``); see ``worker.replay``."""
    svc = services()
    if everything and until is None:
        until = svc.clock()  # later failures are not part of this replay
    candidates, missing = replay.select(
        svc.dead_letters,
        svc.store,
        ids=ids or (),
        everything=everything,
        reason=reason,
        until=until,
    )
    report = replay.replay(
        svc.dead_letters,
        send_replay,
        candidates,
        rate=rate or svc.settings.dlq_replay_rate,
        dry_run=dry_run,
        skip_in_flight=everything,
        budget_seconds=RUN_SECONDS,
    )
    report.missing = missing
    if report.remaining:
        # `everything` goes on from the same snapshot; entries replayed meanwhile are
        # either gone or marked in flight, so nothing is sent twice.
        rest: dict[str, Any] = (
            {"everything": True, "until": until} if everything else {"ids": report.remaining}
        )
        replay_dead_letters.apply_async(kwargs={**rest, "reason": reason, "rate": rate})
    return report.as_dict()


@app.task(name=task_names.DLQ_PURGE)
def purge_dead_letters(
    ids: list[str] | None = None,
    everything: bool = False,
    older_than_seconds: float | None = None,
) -> dict[str, Any]:
    """Drop the given entries, all of them, or those that last failed long enough ago."""
    svc = services()
    dropped, missing = replay.purge(
        svc.dead_letters,
        ids=ids or (),
        everything=everything,
        older_than=older_than_seconds,
        now=svc.clock(),
    )
    return {"purged": dropped, "missing": missing}
