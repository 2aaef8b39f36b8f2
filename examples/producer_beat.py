"""A producer's own Celery beat that asks evalq for an evaluation on a schedule, each slot
exactly once (docs/schedules.md, "Producers with their own beat").

The request id of each send is the entry's name and the *slot* it is due for, taken from
the schedule's own times, never from the time beat sends it::

    team-a-safety-2026-12-07T02:00:00Z

so a beat restarted after it sent, a second beat started by mistake, or a failover sends
the same request id for the same slot again, and evalq's intake makes that a duplicate
that starts nothing. A fixed request id would make every slot after the first a duplicate;
an id made of the send time (or a uuid) would start a slot twice whenever two beats run.

Run it as any Celery beat (only the ``celery`` package is needed)::

    TEAM_BROKER_URL=redis://evalq-producer:...@redis:6379/0 \\
        celery -A examples.producer_beat beat --schedule /var/lib/team-a/beat

``TEAM_EVERY_SECONDS=N`` swaps the nightly crontab for every N seconds (the tests use it).
"""

from __future__ import annotations

import copy
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from celery.beat import PersistentScheduler, ScheduleEntry
from celery.schedules import crontab, schedstate, schedule

#: What the team asks evalq for in every slot (``request_id`` is added per slot).
SAFETY_REQUEST: dict[str, Any] = {
    "schema_version": 1,
    "producer": "team-a",
    "evaluation": {
        "evaluators": [{"evaluatorId": "Builtin.Harmfulness"}],
        "dataSourceConfig": {
            "cloudWatchLogs": {
                "serviceNames": ["checkout-agent"],
                "logGroupNames": ["/aws/bedrock-agentcore/runtimes/checkout-agent-DEFAULT"],
            }
        },
        "tags": {"team": "team-a", "emulator:sessions": "1"},
    },
    "reply_to": ["team-a.evaluations"],
}


class EverySeconds(schedule):  # type: ignore[misc]
    """Every N seconds on whole multiples of N since the epoch. Celery's own interval
    counts from each beat's last run, so two beats (or one restarted without its state
    file) would disagree on the slots; counted from the epoch, they agree."""

    def next_slot(self, last_run_at: datetime) -> datetime:
        """The first slot after ``last_run_at``."""
        period = self.run_every.total_seconds()
        after = self.maybe_make_aware(last_run_at).timestamp()
        return datetime.fromtimestamp((math.floor(after / period) + 1) * period, UTC)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        now: datetime = self.maybe_make_aware(self.now())
        return max(self.next_slot(last_run_at) - now, timedelta(0))

    def is_due(self, last_run_at: datetime) -> schedstate:
        remaining = self.remaining_estimate(last_run_at).total_seconds()
        if remaining > 0:
            return schedstate(is_due=False, next=remaining)
        now: datetime = self.maybe_make_aware(self.now())
        return schedstate(is_due=True, next=(self.next_slot(now) - now).total_seconds())


def due_slot(entry: ScheduleEntry) -> datetime:
    """The slot an entry is due for when beat sends it: its schedule's first time after
    the entry's last run (after a downtime, the first slot missed)."""
    when = entry.schedule
    if isinstance(when, EverySeconds):
        return when.next_slot(entry.last_run_at)
    if isinstance(when, crontab):
        start, delta, _ = when.remaining_delta(entry.last_run_at)
        return datetime.fromtimestamp((start + delta).timestamp(), UTC)
    raise TypeError(f"{entry.name}: use crontab or EverySeconds; other schedules have no slot "
                    "that every beat agrees on")  # fmt: skip


def slot_request_id(name: str, slot: datetime) -> str:
    """``NAME-2026-12-07T02:00:00Z``: the entry and its slot, in UTC to the second (the
    rule evalq's own schedules follow)."""
    return f"{name}-{slot.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


class SlotScheduler(PersistentScheduler):  # type: ignore[misc]
    """Beat's scheduler, sending each ``evals.submit`` entry with its slot's request id."""

    def apply_async(self, entry: ScheduleEntry, producer: Any = None, advance: bool = True,
                    **kwargs: Any) -> Any:  # fmt: skip
        if entry.task == "evals.submit":
            request_id = slot_request_id(entry.name, due_slot(entry))
            entry = copy.copy(entry)  # beat keeps its own entry, with the template
            entry.kwargs = {"request": {**entry.kwargs["request"], "request_id": request_id}}
        return super().apply_async(entry, producer, advance, **kwargs)


def _every() -> schedule:
    seconds = os.environ.get("TEAM_EVERY_SECONDS")
    return EverySeconds(int(seconds)) if seconds else crontab(minute=0, hour=2)


app = Celery("team-a", broker=os.environ.get("TEAM_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    enable_utc=True,
    timezone="UTC",
    beat_scheduler=SlotScheduler,
    beat_schedule={
        "team-a-safety": {
            # Sent by name: evalq's task, on evalq's request queue.
            "task": "evals.submit",
            "schedule": _every(),
            "kwargs": {"request": SAFETY_REQUEST},
            "options": {"queue": "evals.requests"},
        },
    },
)
