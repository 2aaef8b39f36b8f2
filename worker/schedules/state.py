"""Each schedule's small record in Redis, and the scripts that change it atomically.

A run reads the records, plans, then claims a schedule's due slots with a compare-and-set
on its cursor (``claim.lua``): of two beats' runs, or two deliveries of one run, one
claims and the other finds the cursor moved. Claimed slots wait in the schedule's pending
hash, with the exact request each sends, until intake has them (``settle.lua``); a run
that died in between leaves them for the next run to take over once the claim is older
than a lease (``take_over.lua``), which sends those same requests again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from worker.keys import Keys
from worker.lua import load_scripts
from worker.observability.metrics import field
from worker.schedules.config import FILE, ScheduleSet
from worker.schedules.slots import Plan


@dataclass(frozen=True)
class Record:
    """What Redis holds about one schedule."""

    cursor: int | None = None
    since: float | None = None
    last_slot: int | None = None
    last_request_id: str | None = None
    last_job_id: str | None = None
    last_outcome: str | None = None
    pending_at: float | None = None
    #: Claimed slots not yet handed to intake: slot start -> the request it sends.
    pending: Mapping[int, dict[str, Any]] | None = None

    @classmethod
    def of(cls, fields: Mapping[str, str], pending: Mapping[str, str]) -> Record:
        def number(name: str) -> float | None:
            value = fields.get(name)
            return None if value is None else float(value)

        def whole(name: str) -> int | None:
            value = number(name)
            return None if value is None else int(value)

        return cls(
            cursor=whole("cursor"),
            since=number("since"),
            last_slot=whole("last_slot"),
            last_request_id=fields.get("last_request_id"),
            last_job_id=fields.get("last_job_id") or None,
            last_outcome=fields.get("last_outcome"),
            pending_at=number("pending_at"),
            pending={int(slot): json.loads(raw) for slot, raw in pending.items()},
        )


class ScheduleState:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client: Any = client
        self.keys = keys
        self.scripts = load_scripts(client, "worker.schedules")

    def read(self, names: Iterable[str]) -> dict[str, Record]:
        """Every named schedule's record, in one round trip."""
        names = list(names)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.schedule(name))
            pipe.hgetall(self.keys.schedule_pending(name))
        replies = pipe.execute()
        return {name: Record.of(replies[2 * i], replies[2 * i + 1]) for i, name in enumerate(names)}

    def claim(
        self,
        name: str,
        seen: int | None,
        plan: Plan,
        requests: Mapping[int, dict[str, Any]],
        now: float,
    ) -> bool:
        """Move the cursor from ``seen`` to the plan's, holding ``requests`` (one per slot
        to submit) as pending and counting the missed slots; False if another run did."""
        pending = [part for slot, request in requests.items()
                   for part in (slot, json.dumps(request, sort_keys=True))]  # fmt: skip
        args = {
            "seen": "" if seen is None else str(seen),
            "cursor": str(plan.cursor),
            "now": repr(now),
            "missed": plan.missed,
            "missed_field": field(name, "missed"),
        }
        return bool(self.scripts["claim"](self._keys(name), args, pending))

    def take_over(self, name: str, seen_pending_at: float | None, now: float) -> bool:
        """Take over pending slots claimed at ``seen_pending_at``; False if another run did
        (or none are left)."""
        seen = "" if seen_pending_at is None else repr(seen_pending_at)
        args = {"seen": seen, "now": repr(now)}
        return bool(self.scripts["take_over"](self._keys(name), args))

    def settle(self, name: str, slot: int, request_id: str, job_id: str | None, outcome: str
               ) -> bool:  # fmt: skip
        """A pending slot reached intake; False if it had been settled already."""
        args = {
            "slot": str(slot),
            "request_id": request_id,
            "job_id": job_id or "",
            "outcome": outcome,
            "submitted_field": field(name, "submitted"),
        }
        return bool(self.scripts["settle"](self._keys(name), args))

    def publish(self, schedules: ScheduleSet) -> None:
        """Write which schedules are in force (name -> period; a refused entry's name ->
        "") and the entries refused, for the exporter and the CLI; forget the records of
        schedules no longer in the file (not while the file itself is refused: the last
        good one is still in force)."""
        index = {s.name: str(s.spec.period) for s in schedules.schedules}
        index.update({name: "" for name in schedules.refused_names})
        gone: set[str] = set()
        if FILE not in schedules.errors:
            # HGETALL, not HKEYS: the workers' Redis user has the former (deploy/redis).
            gone = set(self.client.hgetall(self.keys.schedules)) - set(index)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.schedules, self.keys.schedule_errors)
        if index:
            pipe.hset(self.keys.schedules, mapping=index)
        if schedules.errors:
            pipe.hset(self.keys.schedule_errors, mapping=schedules.errors)
        for name in gone:
            pipe.delete(self.keys.schedule(name), self.keys.schedule_pending(name))
        pipe.execute()

    def _keys(self, name: str) -> dict[str, str]:
        return {
            **self.keys.fixed,
            "schedule": self.keys.schedule(name),
            "schedule_pending": self.keys.schedule_pending(name),
        }
