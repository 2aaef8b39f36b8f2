"""When a schedule's slots start, which of them are due, and the request id of each.

A slot is one start time of a schedule, a whole second in UTC. ``every: N`` slots are the
whole multiples of N seconds since the Unix epoch, so every process (any beat, before or
after a restart) finds the same slots without sharing a start time; ``cron`` slots are the
cron expression's times in the schedule's time zone (cronsim: Debian cron's rules,
daylight saving time included). Everything here is pure: the caller passes the time.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from itertools import islice, pairwise
from typing import Protocol
from zoneinfo import ZoneInfo

from cronsim import CronSim

#: Most cron slots one plan walks through; a cron left without a beat longer than that
#: (a minutely one for 70 days) has its oldest missed slots left uncounted.
MAX_SCAN = 100_000
#: Cron slots looked at to find a cron schedule's period (its longest gap).
_PERIOD_SAMPLE = 64


class CatchUp(StrEnum):
    """What a schedule does with the slots that passed while no run looked at it."""

    LATEST = "latest"  #: submit the latest of them; the others are missed
    ALL = "all"  #: submit each (at most the settings' limit, the latest ones)
    NONE = "none"  #: submit none; only a slot found within the grace counts as on time


class Spec(Protocol):
    """When a schedule's slots start (epoch seconds)."""

    @property
    def period(self) -> int:
        """The longest time between two slots (seconds)."""
        ...

    def latest(self, at: float) -> int | None:
        """The start of the latest slot at or before ``at`` (None: none in 50 years)."""
        ...

    def next_after(self, at: float) -> int | None:
        """The start of the first slot after ``at`` (None: none in 50 years)."""
        ...

    def between(self, after: int, until: int, keep: int) -> tuple[list[int], int]:
        """The latest ``keep`` slots in ``(after, until]``, oldest first, and how many
        slots that span holds."""
        ...


@dataclass(frozen=True)
class Every:
    """Every ``seconds``, on whole multiples of it since the epoch."""

    seconds: int

    @property
    def period(self) -> int:
        return self.seconds

    def latest(self, at: float) -> int:
        return math.floor(at / self.seconds) * self.seconds

    def next_after(self, at: float) -> int:
        return self.latest(at) + self.seconds

    def between(self, after: int, until: int, keep: int) -> tuple[list[int], int]:
        first, last = self.next_after(after), self.latest(until)
        if last < first:
            return [], 0
        count = (last - first) // self.seconds + 1
        kept = min(keep, count)
        return [last - i * self.seconds for i in reversed(range(kept))], count


@dataclass(frozen=True)
class Cron:
    """A five-field cron expression read in ``zone``."""

    expression: str
    zone: ZoneInfo

    @cached_property
    def period(self) -> int:
        # From a fixed time, so every process finds the same period for the same expression.
        sample = list(islice(self._after(0), _PERIOD_SAMPLE))
        return max((b - a for a, b in pairwise(sample)), default=0)

    def latest(self, at: float) -> int | None:
        # cronsim walks back from one second past ``at``: a slot at ``at`` itself counts.
        start = datetime.fromtimestamp(math.floor(at) + 1, self.zone)
        found = next(CronSim(self.expression, start, reverse=True), None)
        return None if found is None else int(found.timestamp())

    def next_after(self, at: float) -> int | None:
        return next(self._after(math.floor(at)), None)

    def between(self, after: int, until: int, keep: int) -> tuple[list[int], int]:
        kept: deque[int] = deque(maxlen=keep)
        count = 0
        for slot in islice(self._after(after), MAX_SCAN):
            if slot > until:
                return list(kept), count
            kept.append(slot)
            count += 1
        # Too many to walk: the latest ones from the other end, the count as far as walked.
        return self._before(until, after, keep), count

    def _after(self, after: int) -> Iterator[int]:
        start = datetime.fromtimestamp(after, self.zone)
        # The guard: cronsim works on wall time, which repeats once a year.
        return (s for s in map(_epoch, CronSim(self.expression, start)) if s > after)

    def _before(self, until: int, after: int, keep: int) -> list[int]:
        start = datetime.fromtimestamp(until + 1, self.zone)
        found = islice(map(_epoch, CronSim(self.expression, start, reverse=True)), keep)
        return sorted(s for s in found if s > after)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


@dataclass(frozen=True)
class Plan:
    """What one run does with one schedule: submit ``submit`` (slot starts, oldest first),
    count ``missed`` slots as passed over, and move the schedule's cursor to ``cursor``."""

    submit: tuple[int, ...]
    missed: int
    cursor: int


def plan(
    spec: Spec,
    catch_up: CatchUp,
    cursor: int | None,
    now: float,
    *,
    grace: float,
    limit: int,
) -> Plan | None:
    """The plan for a schedule whose last handled slot started at ``cursor`` (None: never
    run), or None when no slot came due since."""
    if cursor is None:
        # A schedule seen for the first time starts with its next slot, as cron would.
        return Plan((), 0, math.floor(now))
    current = spec.latest(now)
    if current is None or current <= cursor:
        return None
    keep = limit if catch_up is CatchUp.ALL else 1
    latest, count = spec.between(cursor, current, keep)
    if catch_up is CatchUp.NONE:
        latest = latest if now - current <= grace else []
    return Plan(tuple(latest), count - len(latest), current)


def utc_iso(epoch: float) -> str:
    """``2026-12-07T02:00:00Z``: ISO 8601, UTC, seconds precision."""
    return datetime.fromtimestamp(math.floor(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_request_id(name: str, slot: int) -> str:
    """The request id of a schedule's slot: the same for every process that submits it."""
    return f"{name}-{utc_iso(slot)}"


def manual_request_id(name: str, now: float) -> str:
    """The request id of a run asked for by hand (``evalq schedules run``)."""
    return f"{name}-manual-{utc_iso(now)}"
