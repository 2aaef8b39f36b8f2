"""What the exporter reads of the job store at scrape time (``evalq exporter``).

The exporter has a Redis user of its own that only reads (docs/roles.md): no job script,
no :class:`~worker.jobs.store.JobStore`. Its reads are queued here on the exporter's own
pipeline, so a scrape keeps its round trips, and this module names the job keys it reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from worker.jobs.store import HIGHEST_PRIORITY
from worker.keys import Keys


@dataclass(frozen=True)
class TargetCounts:
    """One target's slots and backlog, as a scrape reads them."""

    #: Jobs holding one of its slots.
    active: int
    #: Epoch seconds before which admission stays paused (None: never paused).
    paused_until: float | None
    #: (priority, producer) of every producer with requests waiting.
    waiting: list[tuple[int, str]]


class JobGauges:
    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def queue_counts(self, pipe: Any, targets: Sequence[str], stall_alert_after: int) -> None:
        """Queue the stalled jobs' count and each target's slots, pause and producers
        waiting; :meth:`counts` reads the replies."""
        pipe.zcount(self.keys.stalled, stall_alert_after, "+inf")
        for name in targets:
            target_keys = self.keys.target(name)
            pipe.scard(target_keys.active)
            pipe.get(target_keys.admission_paused_until)
            for priority in range(HIGHEST_PRIORITY + 1):
                pipe.zrange(target_keys.backlog_turns(priority), 0, -1)

    def counts(
        self, replies: Sequence[Any], targets: Sequence[str]
    ) -> tuple[int, list[TargetCounts]]:
        """(jobs stalled, each target's counts) from the replies of :meth:`queue_counts`."""
        stalled, *per_target = replies
        step = 2 + HIGHEST_PRIORITY + 1
        counts = []
        for index in range(len(targets)):
            size, pause, *turns = per_target[index * step : (index + 1) * step]
            waiting = [(priority, producer) for priority, producers in enumerate(turns)
                       for producer in producers]  # fmt: skip
            counts.append(TargetCounts(int(size), None if pause is None else float(pause),
                                       waiting))  # fmt: skip
        return int(stalled), counts

    def queue_backlog(self, pipe: Any, target: str, producer: str, priority: int) -> None:
        """Queue the length of one producer's backlog at one priority."""
        pipe.llen(self.keys.target(target).backlog(producer, priority))

    def queue_job_target(self, pipe: Any, request_id: str) -> None:
        """Queue the target a job was routed to (None if it has no record)."""
        pipe.hget(self.keys.job(request_id), "target")
