"""The job store: records, backlog, slots and the due-time index, all in Redis.

Every move that several worker processes could race on is one Lua script (``worker.lua``);
everything else is a plain read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast

import redis

from api_contracts import EvaluationRequest
from worker import lua
from worker.jobs import Job, encode_fields
from worker.keys import Keys
from worker.states import JobState, sources_of

RegisterOutcome = Literal["created", "duplicate", "requeued", "conflict"]

#: ``EvaluationRequest.priority`` runs from 0 to this; higher is admitted first.
HIGHEST_PRIORITY = 9


@dataclass(frozen=True)
class Registration:
    outcome: RegisterOutcome
    state: str


@dataclass(frozen=True)
class Admission:
    admitted: list[str]
    expired: list[str]


@dataclass(frozen=True)
class DueTimer:
    request_id: str
    due_at: float
    #: The timer's score after the claim; a task that finds another score knows that
    #: someone else already handled the timer.
    lease_token: float


class JobStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        # redis-py types every reply as `Awaitable | Any` (sync and async share stubs).
        self.redis: Any = client
        self.keys = keys
        self._register = client.register_script(lua.REGISTER)
        self._admit = client.register_script(lua.ADMIT)
        self._transition = client.register_script(lua.TRANSITION)
        self._requeue = client.register_script(lua.REQUEUE)
        self._claim_due = client.register_script(lua.CLAIM_DUE)
        self._expire_queued = client.register_script(lua.EXPIRE_QUEUED)

    # -- intake -------------------------------------------------------------------------
    def register(
        self,
        request: EvaluationRequest,
        *,
        now: float,
        deadline_at: float,
        retention: float,
        remote_name: str | None = None,
    ) -> Registration:
        """Register once; ``remote_name`` (the name the remote job will get) is indexed so
        a remote job can be matched to its request without scanning."""
        record = {
            "request_id": request.request_id,
            "state": JobState.QUEUED.value,
            "request": request.model_dump(mode="json"),
            "payload_hash": request.payload_hash(),
            "producer": request.producer,
            "backend": str(request.backend),
            "priority": request.priority,
            "accepted_at": now,
            "updated_at": now,
            "deadline_at": deadline_at,
            "retention_seconds": retention,
            "remote_name": remote_name,
        }
        keys = [
            self.keys.job(request.request_id),
            self.keys.jobs_by_time,
            self.keys.backlog(request.producer, request.priority),
            self.keys.backlog_turns(request.priority),
            self.keys.queued_by_deadline,
            self.keys.backlog_rounds,
            self.keys.remote_names,
        ]
        args: list[str | float] = [
            request.payload_hash(),
            now,
            request.request_id,
            request.producer,
        ]
        outcome, state = self._register(keys=keys, args=[*args, *encode_fields(record)])
        return Registration(outcome=cast(RegisterOutcome, _text(outcome)), state=_text(state))

    # -- admission ----------------------------------------------------------------------
    def admit(self, *, now: float, quota: int, scan_limit: int = 1000) -> Admission:
        """Fill free slots fairly: highest priority first, producers in turn within one."""
        keys = [
            self.keys.active,
            self.keys.backlog_rounds,
            self.keys.due,
            self.keys.admission_paused_until,
            self.keys.queued_by_deadline,
        ]
        args: list[str | float] = [
            now,
            quota,
            self.keys.job(""),
            self.keys.backlog_prefix,
            scan_limit,
            self.keys.backlog_turns(""),
            HIGHEST_PRIORITY,
        ]
        admitted, expired = self._admit(keys=keys, args=args)
        return Admission([_text(i) for i in admitted], [_text(i) for i in expired])

    def overdue_queued(self, *, now: float, limit: int) -> list[str]:
        """Queued requests whose deadline passed, earliest deadline first."""
        ids = self.redis.zrangebyscore(self.keys.queued_by_deadline, "-inf", now, 0, limit)
        return [_text(i) for i in ids]

    def expire_queued(self, request_ids: list[str], *, now: float) -> list[str]:
        """Finish those of ``request_ids`` still queued past their deadline as EXPIRED."""
        if not request_ids:
            return []
        keys = [self.keys.queued_by_deadline, self.keys.due]
        expired = self._expire_queued(keys=keys, args=[now, self.keys.job(""), *request_ids])
        return [_text(i) for i in expired]

    def requeue(self, job: Job, *, now: float, pause_until: float) -> bool:
        keys = [
            self.keys.job(job.request_id),
            self.keys.due,
            self.keys.active,
            self.keys.backlog(job.producer, job.priority),
            self.keys.backlog_turns(job.priority),
            self.keys.admission_paused_until,
            self.keys.queued_by_deadline,
            self.keys.backlog_rounds,
        ]
        return bool(self._requeue(keys=keys, args=[job.request_id, job.producer, now, pause_until]))

    # -- state machine ------------------------------------------------------------------
    def transition(
        self,
        request_id: str,
        new_state: JobState,
        *,
        expected: frozenset[JobState] | None = None,
        due_at: float | None = None,
        clear_due: bool = False,
        release_slot: bool = False,
        **values: Any,
    ) -> bool:
        """Move the job to ``new_state`` if it is still in one of ``expected`` (default:
        every state the state machine allows to enter ``new_state`` from)."""
        sources = expected if expected is not None else sources_of(new_state)
        due = "-" if clear_due else ("" if due_at is None else repr(due_at))
        keys = [
            self.keys.job(request_id),
            self.keys.due,
            self.keys.active,
            self.keys.queued_by_deadline,
            self.keys.published_by_time,
            self.keys.retained_by_time,
        ]
        args = [
            request_id,
            ",".join(sorted(sources)),
            new_state.value,
            due,
            "1" if release_slot else "0",
            *encode_fields(values),
        ]
        moved, _before = self._transition(keys=keys, args=args)
        return bool(moved)

    def update(self, request_id: str, **values: Any) -> None:
        """Write fields that do not change the state (counters, last error)."""
        self.redis.hset(self.keys.job(request_id), mapping=dict(_pairs(encode_fields(values))))

    def schedule(self, request_id: str, due_at: float) -> None:
        self.redis.zadd(self.keys.due, {request_id: due_at})

    # -- timers -------------------------------------------------------------------------
    def claim_due(self, *, now: float, horizon: float, lease: float, limit: int) -> list[DueTimer]:
        flat = self._claim_due(keys=[self.keys.due], args=[now, horizon, lease, limit])
        return [
            DueTimer(_text(flat[i]), float(flat[i + 1]), float(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]

    def due_score(self, request_id: str) -> float | None:
        score = self.redis.zscore(self.keys.due, request_id)
        return None if score is None else float(score)

    # -- reads --------------------------------------------------------------------------
    def get(self, request_id: str) -> Job | None:
        raw = self.redis.hgetall(self.keys.job(request_id))
        if not raw:
            return None
        return Job.from_hash({_text(k): _text(v) for k, v in raw.items()})

    def iter_jobs(self, *, newest_first: bool = True, batch: int = 200) -> Iterator[Job]:
        start = 0
        while True:
            ids = (self.redis.zrevrange if newest_first else self.redis.zrange)(
                self.keys.jobs_by_time, start, start + batch - 1
            )
            if not ids:
                return
            pipe = self.redis.pipeline(transaction=False)
            for request_id in ids:
                pipe.hgetall(self.keys.job(_text(request_id)))
            for raw in pipe.execute():
                if raw:
                    yield Job.from_hash({_text(k): _text(v) for k, v in raw.items()})
            start += batch

    def active_count(self) -> int:
        return int(self.redis.scard(self.keys.active))

    def backlog_size(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for priority in range(HIGHEST_PRIORITY + 1):
            pipe.zrange(self.keys.backlog_turns(priority), 0, -1)
        waiting = [(priority, _text(p)) for priority, producers in enumerate(pipe.execute())
                   for p in producers]  # fmt: skip
        for priority, producer in waiting:
            pipe.llen(self.keys.backlog(producer, priority))
        return sum(int(n) for n in pipe.execute())

    def lock(self, request_id: str, lease: float) -> Any:
        """A short per-job lease so two deliveries of a task don't advance one job twice."""
        return self.redis.lock(self.keys.job_lock(request_id), timeout=lease, blocking=False)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(flat: list[str]) -> Iterator[tuple[str, str]]:
    return zip(flat[::2], flat[1::2], strict=True)
