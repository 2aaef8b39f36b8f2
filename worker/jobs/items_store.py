"""The scenario items of requests that run them, in Redis (docs/scenarios.md).

Each request has a hash of its items (``Keys.scenario_items``), one JSON state per index:
``status`` (waiting, ready, dispatched, invoking, ended, failed), ``attempt`` (the
current one; its session id is ``session_id(request_id, index, attempt)``), ``sessions``
(attempts invoked), ``failures`` (retries spent), ``refusals`` (calls refused or
interrupted, throttles included: the backoff's exponent), ``not_before``, ``session_id``,
``stop_reason``, ``ended_at``, ``error``. Each target has a ready queue and an in-flight
set of InvokeHarness calls (``TargetKeys.invocations_ready``, ``invocations``), both of
members ``request_id|index|attempt``. Every change that racing tasks could make twice is
one Lua script (``scripts/*_items.lua``, ``*_invocation(s).lua``):

* the request's step sweeps its items (:meth:`ScenarioItems.sweep`) and sets its timer;
* the target's dispatch hands ready items out while fewer than its ``max_invocations``
  calls are in flight (:meth:`ScenarioItems.dispatch`);
* a task claims its attempt before it calls (:meth:`ScenarioItems.claim`): one claim per
  attempt, so a session id is invoked at most once; it refreshes its in-flight entry on
  each event (:meth:`ScenarioItems.alive`) and records how the call ended
  (:meth:`ScenarioItems.record`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from worker.jobs.record import Job
from worker.jobs.store import JobStore
from worker.jobs.store_base import StoreBase


class CallResult(StrEnum):
    """How one claimed InvokeHarness call ended (``record_invocation.lua``)."""

    ENDED = "ended"  #: the stream ended: the session is evaluated
    RETRY = "retry"  #: refused before the stream: the same session id may go again
    INTERRUPTED = "interrupted"  #: the session was used: a new attempt, a new session id
    FAILED = "failed"  #: left out


@dataclass(frozen=True)
class Invocation:
    """One attempt of one item, as the target's queues name it."""

    request_id: str
    index: int
    attempt: int

    @property
    def member(self) -> str:
        return f"{self.request_id}|{self.index}|{self.attempt}"

    @classmethod
    def parse(cls, member: str) -> Invocation:
        request_id, index, attempt = member.rsplit("|", 2)
        return cls(request_id, int(index), int(attempt))


@dataclass(frozen=True)
class Sweep:
    """What a request's step found among its items."""

    ended: int
    failed: int
    #: Items not ended nor failed (waiting, ready, dispatched or invoking).
    open: int
    #: When the last stream ended (0.0 if none did).
    last_end: float
    #: Dispatched items no task claimed in time: hand them out again.
    resend: list[Invocation]


class ScenarioItems(StoreBase):
    """The scenario items of requests and the targets' queues of InvokeHarness calls."""

    def __init__(self, store: JobStore) -> None:
        super().__init__(store.redis, store.keys, store.scripts)

    def _job_keys(self, job_id: str, target: str) -> dict[str, str]:
        target_keys = self.keys.target(target)
        return {
            "job": self.keys.job(job_id),
            "items": self.keys.scenario_items(job_id),
            "due": self.keys.due,
            "invocations": target_keys.invocations,
            "invocations_ready": target_keys.invocations_ready,
        }

    def sweep(
        self,
        job: Job,
        *,
        now: float,
        stale_after: float,
        resend_after: float,
        max_failures: int,
        ingestion_delay: float,
    ) -> Sweep:
        """Ready what may go, end attempts that died, set the job's timer
        (``sweep_items.lua``)."""
        args = {
            "request_id": job.request_id,
            "count": job.scenario_items,
            "now": repr(now),
            "stale_after": stale_after,
            "resend_after": resend_after,
            "max_failures": max_failures,
            "ingestion_delay": ingestion_delay,
            "deadline": repr(job.deadline_at),
        }
        ended, failed, open_, last_end, resend = self.scripts["sweep_items"](
            self._job_keys(job.request_id, job.target), args
        )
        return Sweep(
            int(ended), int(failed), int(open_), float(last_end),
            [Invocation.parse(m) for m in resend],
        )  # fmt: skip

    def dispatch(
        self, target: str, *, now: float, limit: int, stale_after: float, batch: int = 100
    ) -> list[Invocation]:
        """Hand out the target's ready items while fewer than ``limit`` calls are in
        flight (``dispatch_invocations.lua``); the caller sends a task for each."""
        target_keys = self.keys.target(target)
        keys = {
            "invocations": target_keys.invocations,
            "invocations_ready": target_keys.invocations_ready,
        }
        args = {
            "now": repr(now),
            "limit": limit,
            "job_prefix": self.keys.job(""),
            "items_prefix": self.keys.scenario_items(""),
            "stale_after": stale_after,
            "batch": batch,
        }
        return [Invocation.parse(m) for m in self.scripts["dispatch_invocations"](keys, args)]

    def claim(self, call: Invocation, target: str, *, session_id: str, now: float) -> int | None:
        """Claim the attempt before calling: the item's retries spent so far, or None when
        the attempt is not this caller's to make (claimed already, or moved on)."""
        args = {
            "index": call.index,
            "attempt": call.attempt,
            "session_id": session_id,
            "now": repr(now),
            "member": call.member,
        }
        failures = int(
            self.scripts["claim_invocation"](self._job_keys(call.request_id, target), args)
        )
        return None if failures < 0 else failures

    def alive(self, call: Invocation, target: str, now: float) -> None:
        """A sign of life of a claimed call: its in-flight entry moves to ``now`` (only if
        it is still there: an attempt found dead stays dead)."""
        self.redis.zadd(self.keys.target(target).invocations, {call.member: now}, xx=True)

    def record(
        self,
        call: Invocation,
        target: str,
        result: CallResult,
        *,
        now: float,
        stop_reason: str = "",
        error: str = "",
        not_before: float = 0.0,
        spends: bool = True,
        max_failures: int,
    ) -> bool:
        """Record how a claimed call ended and wake the job (``record_invocation.lua``);
        False when the attempt was no longer the item's (found dead meanwhile)."""
        args = {
            "request_id": call.request_id,
            "index": call.index,
            "attempt": call.attempt,
            "member": call.member,
            "now": repr(now),
            "result": result.value,
            "stop_reason": stop_reason,
            "why": error,
            "not_before": repr(not_before),
            "spends": 1 if spends else 0,
            "max_failures": max_failures,
        }
        keys = self._job_keys(call.request_id, target)
        return bool(self.scripts["record_invocation"](keys, args))

    def state(self, request_id: str, index: int) -> dict[str, Any]:
        """One item's state ({} if it has none)."""
        raw = self.redis.hget(self.keys.scenario_items(request_id), str(index))
        found: dict[str, Any] = json.loads(raw) if raw else {}
        return found

    def states(self, request_id: str) -> dict[int, dict[str, Any]]:
        """Every item's state by index."""
        raw = self.redis.hgetall(self.keys.scenario_items(request_id))
        return {int(index): json.loads(text) for index, text in raw.items()}

    def forget(self, request_id: str) -> None:
        """Drop a request's items once their results are in its record."""
        self.redis.delete(self.keys.scenario_items(request_id))
