"""The job store: records, backlog, slots and the due-time index, all in Redis.

Every write that moves a job, or that several worker processes could race on, is one Lua
script (``scripts/*.lua``) that moves the job along the state table
(``worker.jobs.states``); everything else is a plain read or a write of fields that are
not the state. Replies are read as text: every Redis client evalq builds decodes them
(``worker.runtime.root``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import redis

from api_contracts import AgentCoreEvaluation, EvaluationRequest, EvaluatorUpdateRequest
from worker.jobs.record import ROLLOUT, Job, encode_fields
from worker.jobs.scripts import load_job_scripts
from worker.jobs.states import JobState, Move, sources
from worker.jobs.store_base import StoreBase
from worker.keys import DEFAULT_TARGET, Keys, TargetKeys
from worker.lua import Call, run_together
from worker.observability import metrics

#: ``EvaluationRequest.priority`` runs from 0 to this; higher is admitted first.
HIGHEST_PRIORITY = 9
#: A timer handed out again and again without a step setting it gets at most 2^this times
#: the lease (30 s x 16: 8 minutes with the defaults).
LEASE_MAX_DOUBLINGS = 4


class IntakeOutcome(StrEnum):
    """What intake did with a request."""

    CREATED = "created"  #: a new job
    DUPLICATE = "duplicate"  #: the same request again: nothing new happened
    REQUEUED = "requeued"  #: a dead-lettered job went back on the backlog (a replay)
    CONFLICT = "conflict"  #: the request_id came before with another payload
    #: the producer has as many requests waiting in the target as it may (nothing written)
    QUOTA = "quota"
    REJECTED = "rejected"  #: the request is invalid (never registered)


#: Outcomes that mean the request was accepted.
ACCEPTED = frozenset({IntakeOutcome.CREATED, IntakeOutcome.DUPLICATE, IntakeOutcome.REQUEUED})


class JobRef(Protocol):
    """What names a job for a move: its request and the target whose keys it is in."""

    @property
    def request_id(self) -> str: ...

    @property
    def target(self) -> str: ...


@dataclass(frozen=True)
class Ref:
    """A :class:`JobRef` for callers that hold no job record."""

    request_id: str
    target: str


@dataclass(frozen=True)
class Registration:
    outcome: IntakeOutcome
    #: None when nothing was registered (``QUOTA`` for a new request).
    state: JobState | None
    #: The job's id: the request_id, or ``producer/request_id`` where another producer's
    #: record holds the request_id (request ids are scoped by producer).
    job_id: str


@dataclass(frozen=True)
class Admission:
    admitted: list[str]
    expired: list[str]


@dataclass(frozen=True)
class TargetWork:
    """What one target's tick has to do (``JobStore.survey``)."""

    #: Jobs holding its slots (admitted, running, stopping): its listing watches them.
    slot_holders: int
    #: A free slot, admission not paused, and requests waiting (or held).
    admit: bool
    #: A queued request is past its deadline.
    overdue: bool
    #: Its running jobs' listing is due (never scheduled, or its time came).
    listing_due: bool = False


@dataclass(frozen=True)
class Moved:
    """What ``JobStore.transition`` did (true if the job moved)."""

    moved: bool
    #: The move freed what admission waits on: a slot, or an evaluator a rollout drained
    #: (``transition.lua`` says so); ``worker.jobs.moves`` admits the next job then.
    freed: bool = False

    def __bool__(self) -> bool:
        return self.moved


@dataclass(frozen=True)
class DueTimer:
    request_id: str
    due_at: float
    #: The timer's score after the claim; a task that finds another score knows that
    #: someone else already handled the timer.
    lease_token: float
    #: Hand-outs since a step last set the timer (more than 1: a lease ran out before).
    claims: int = 1


class JobStore(StoreBase):
    """Registration, admission, moves, timers and reads of job records (the other
    concerns' stores are built on it: ``worker.jobs.store_base``)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        super().__init__(client, keys, load_job_scripts(client))

    def _backlog(self, target: TargetKeys, producer: str, priority: int) -> dict[str, str]:
        """The keys of one producer's backlog at one priority."""
        return {
            "backlog": target.backlog(producer, priority),
            "backlog_turns": target.backlog_turns(priority),
        }

    # -- intake -------------------------------------------------------------------------
    def register(
        self,
        request: EvaluationRequest,
        *,
        target: str,
        now: float,
        deadline_at: float,
        retention: float,
        remote_name: Callable[[str], str | None] = lambda _job_id: None,
        admit_quota: int | None = None,
        backlog_cap: int | None = None,
    ) -> tuple[Registration, Admission]:
        """Register once; ``remote_name`` gives the name the remote job of a job id will get,
        indexed so a remote job can be matched to its request without scanning. With
        ``admit_quota`` the target's free slots are filled right after, in the same round
        trip; with ``backlog_cap``, a producer with that many requests waiting in the
        target gets ``QUOTA`` and nothing is written."""
        record = {
            "request_id": request.request_id,
            "request": request.model_dump(mode="json"),
            "payload_hash": request.payload_hash(),
            "producer": request.producer,
            "backend": str(request.backend),
            "target": target,
            "priority": request.priority,
            "accepted_at": now,
            "updated_at": now,
            "deadline_at": deadline_at,
            "retention_seconds": retention,
            "remote_name": remote_name(request.request_id),
            **_drain_and_scenario_fields(request),
        }
        scoped_name = remote_name(scoped_job_id(request.producer, request.request_id))
        target_keys = self.keys.target(target)
        backlog = self._backlog(target_keys, request.producer, request.priority)
        keys = self._keys(target, request.request_id, **backlog)
        args = {
            **self._registration_args(
                request, record["payload_hash"], now, target_keys, backlog_cap
            ),
            # With scenarios its items run first (PREPARING), else to the backlog.
            "first": "prepare" if request.scenarios is not None else "create",
            "metric_labels": metrics.request_labels(request, target),
            "scoped_remote_name": scoped_name or "",
        }
        calls: list[Call] = [(self.scripts["register"], keys, args, encode_fields(record))]
        if admit_quota is not None:
            calls.append(self._admit_call(target, now=now, quota=admit_quota))
        replies = run_together(self.redis, calls)
        registration = _registration(replies[0])
        admitted, expired = replies[1] if admit_quota is not None else ([], [])
        return registration, Admission(list(admitted), list(expired))

    def _registration_args(
        self,
        request: EvaluationRequest | EvaluatorUpdateRequest,
        payload_hash: str,
        now: float,
        target_keys: TargetKeys,
        backlog_cap: int | None,
    ) -> dict[str, Any]:
        """What register.lua takes of every registration."""
        return {
            "request_id": request.request_id,
            "payload_hash": payload_hash,
            "producer": request.producer,
            "now": now,
            "job_prefix": self.keys.job(""),
            "backlog_prefix": target_keys.backlog_prefix,
            "backlog_cap": "" if backlog_cap is None else backlog_cap,
            "highest_priority": HIGHEST_PRIORITY,
        }

    def register_rollout(
        self, request: EvaluatorUpdateRequest, *, target: str, now: float, deadline_at: float
    ) -> Registration:
        """Register an evaluator rollout once (a record of kind ``rollout``, in the same
        namespace of request ids); with ``drain`` its evaluator is held from admission
        in ``target`` from now on (the move keeps the index)."""
        payload_hash = request.payload_hash()
        record = {
            "request_id": request.request_id,
            "request": request.model_dump(mode="json"),
            "payload_hash": payload_hash,
            "producer": request.producer,
            "backend": "agentcore",
            "target": target,
            "kind": ROLLOUT,
            "evaluator_id": request.evaluator_id,
            "drain_evaluator": request.evaluator_id if request.drain else "",
            "accepted_at": now,
            "updated_at": now,
            "deadline_at": deadline_at,
            "retention_seconds": 0,
        }
        target_keys = self.keys.target(target)
        args = {
            **self._registration_args(request, payload_hash, now, target_keys, None),
            "first": "roll_out",
            "metric_labels": metrics.field("agentcore", metrics.target_label(target)),
            "scoped_remote_name": "",
        }
        keys = self._keys(
            target, request.request_id, **self._backlog(target_keys, request.producer, 0)
        )
        return _registration(self.scripts["register"](keys, args, encode_fields(record)))

    def enqueue(self, job: Job, *, now: float, **values: Any) -> bool:
        """A request whose scenario sessions are ready: to the back of its producer's
        backlog, writing ``values``; True if it moved."""
        backlog = self._backlog(self.keys.target(job.target), job.producer, job.priority)
        keys = self._keys(job.target, job.request_id, **backlog)
        args = {"request_id": job.request_id, "producer": job.producer}
        fields = encode_fields({"prepared_at": now, "updated_at": now, **values})
        return bool(self.scripts["enqueue"](keys, args, fields))

    # -- admission ----------------------------------------------------------------------
    def admit(self, target: str, *, now: float, quota: int, scan_limit: int = 1000) -> Admission:
        """Fill the target's free slots fairly: highest priority first, producers in turn
        within one."""
        script, keys, args, rest = self._admit_call(target, now, quota, scan_limit)
        admitted, expired = script(keys, args, rest)
        return Admission(list(admitted), list(expired))

    def _admit_call(self, target: str, now: float, quota: int, scan_limit: int = 1000) -> Call:
        target_keys = self.keys.target(target)
        args = {
            "now": now,
            "quota": quota,
            "job_prefix": self.keys.job(""),
            "backlog_prefix": target_keys.backlog_prefix,
            "turns_prefix": target_keys.backlog_turns(""),
            "scan_limit": scan_limit,
            "highest_priority": HIGHEST_PRIORITY,
        }
        return self.scripts["admit"], self._keys(target), args, ()

    def survey(
        self, quotas: dict[str, int], *, now: float, listing_lease: float = 0.0
    ) -> dict[str, TargetWork]:
        """What each target's tick has to do, every target in one round trip
        (``survey.lua``); ``quotas``: target name -> its quota of slots. A due listing is
        claimed for ``listing_lease`` seconds (0: not claimed)."""
        if not quotas:
            return {}
        rest: list[Any] = []
        for name, quota in quotas.items():
            keys = self.keys.target(name)
            rest += [quota, name, keys.active, keys.queued_by_deadline, keys.held,
                     keys.admission_paused_until, keys.backlog_turns("")]  # fmt: skip
        args = {"now": now, "highest_priority": HIGHEST_PRIORITY, "listing_lease": listing_lease}
        replies = self.scripts["survey"](self.keys.fixed, args, rest)
        return {
            name: TargetWork(int(holders), bool(admit), bool(overdue), bool(listing))
            for name, (holders, admit, overdue, listing) in zip(quotas, replies, strict=True)
        }

    def watch_at(self, target: str, at: float, *, sooner_only: bool = False) -> None:
        """Time the target's next listing (``sooner_only``: unless one is due sooner)."""
        self.redis.zadd(self.keys.watch_due, {target: at}, lt=sooner_only)

    def unwatch(self, target: str) -> None:
        """The target has nothing to watch: its listing is not timed any more."""
        self.redis.zrem(self.keys.watch_due, target)

    def overdue_queued(self, target: str, *, now: float, limit: int) -> list[str]:
        """The target's queued requests whose deadline passed, earliest deadline first."""
        index = self.keys.target(target).queued_by_deadline
        return list(self.redis.zrangebyscore(index, "-inf", now, 0, limit))

    def expire_queued(self, target: str, request_ids: list[str], *, now: float) -> list[str]:
        """Finish those of ``request_ids`` still queued past their deadline as EXPIRED."""
        if not request_ids:
            return []
        args = {"now": now, "job_prefix": self.keys.job("")}
        return list(self.scripts["expire_queued"](self._keys(target), args, request_ids))

    def requeue(self, job: Job, *, now: float, pause_until: float) -> bool:
        """Back to the front of the backlog; admission pauses until ``pause_until``."""
        backlog = self._backlog(self.keys.target(job.target), job.producer, job.priority)
        keys = self._keys(job.target, job.request_id, **backlog)
        args = {
            "request_id": job.request_id,
            "producer": job.producer,
            "now": now,
            "pause_until": pause_until,
        }
        return bool(self.scripts["requeue"](keys, args))

    # -- the state machine --------------------------------------------------------------
    def transition(
        self,
        job: JobRef,
        move: Move,
        *,
        from_state: JobState | None = None,
        due_at: float | None = None,
        clear_due: bool = False,
        **values: Any,
    ) -> Moved:
        """Move the job by ``move`` if the move starts from its state (and that state is
        ``from_state``, when given), writing ``values``; true if it moved, and whether
        that freed a slot (``worker.jobs.moves`` is the one caller: it admits then)."""
        if from_state is not None and from_state not in sources(move):
            raise ValueError(f"the move {move} does not start from {from_state}")
        if "state" in values:
            raise ValueError("a job's state changes by a move, never as a field")
        args = {
            "request_id": job.request_id,
            "move_name": move.value,
            "expected": from_state.value if from_state else "",
            "due_at": "-" if clear_due else ("" if due_at is None else repr(due_at)),
        }
        moved, _before, freed = self.scripts["transition"](
            self._keys(job.target, job.request_id), args, encode_fields(values)
        )
        return Moved(bool(moved), bool(freed))

    def update(self, request_id: str, **values: Any) -> None:
        """Write fields that do not change the state (counters, last error)."""
        if "state" in values:
            raise ValueError("a job's state changes by a move, never as a field")
        fields = encode_fields(values)
        mapping = dict(zip(fields[::2], fields[1::2], strict=True))
        self.redis.hset(self.keys.job(request_id), mapping=mapping)

    def stalled(self, request_id: str) -> int:
        """One more firing in a row that moved the job nothing; how many now."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(self.keys.job(request_id), "stalls", 1)
        pipe.zincrby(self.keys.stalled, 1, request_id)
        stalls, _ = pipe.execute()
        return int(stalls)

    def unstalled(self, request_id: str) -> None:
        """The job moved: its run of stalls is over."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.job(request_id), "stalls", 0)
        pipe.zrem(self.keys.stalled, request_id)
        pipe.execute()

    def stalled_jobs(self, at_least: int, limit: int = 1000) -> list[tuple[str, int]]:
        """Jobs stalled at least ``at_least`` times in a row, most first."""
        found = self.redis.zrevrangebyscore(self.keys.stalled, "+inf", at_least, 0, limit,
                                            withscores=True)  # fmt: skip
        return [(request_id, int(score)) for request_id, score in found]

    def forget_dead(
        self, *, dead_letter_key: Callable[[str], str], died_before: float, limit: int
    ) -> list[str]:
        """Forget the oldest DEAD records whose dead letter is gone (``forget_dead.lua``),
        ``limit`` at most; a record that never learned its entry, once it died before
        ``died_before``. Returns the ids forgotten."""
        ids = list(self.redis.zrange(self.keys.dead_jobs, 0, limit - 1))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for request_id in ids:
            pipe.hmget(self.keys.job(request_id), "target", "dead_letter_id")
        rest: list[str] = []
        for request_id, (target, entry) in zip(ids, pipe.execute(), strict=True):
            target_keys = self.keys.target(target or DEFAULT_TARGET)
            rest += [request_id, dead_letter_key(entry) if entry else "",
                     target_keys.remote_names, target_keys.published_by_time]  # fmt: skip
        args = {"job_prefix": self.keys.job(""), "items_prefix": self.keys.scenario_items(""),
                "died_before": died_before}  # fmt: skip
        return list(self.scripts["forget_dead"](self.keys.fixed, args, rest))

    def schedule(self, request_id: str, due_at: float) -> None:
        self.redis.zadd(self.keys.due, {request_id: due_at})

    def queue_deletion(self, job: JobRef, *, now: float) -> None:
        """Hand the job's remote deletion to the janitor's bulk delete; its timer goes."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.target(job.target).deletions, {job.request_id: now})
        pipe.zrem(self.keys.due, job.request_id)
        pipe.execute()

    def deletions_due(self, target: str, *, now: float, limit: int) -> list[str]:
        index = self.keys.target(target).deletions
        return list(self.redis.zrangebyscore(index, "-inf", now, 0, limit))

    def deletions_due_at(self, target: str, request_ids: list[str]) -> list[float | None]:
        """When each job's bulk deletion fell due (None: not waiting for one)."""
        pipe = self.redis.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.zscore(self.keys.target(target).deletions, request_id)
        return [None if at is None else float(at) for at in pipe.execute()]

    def deletion_done(self, target: str, request_ids: list[str]) -> None:
        if request_ids:
            self.redis.zrem(self.keys.target(target).deletions, *request_ids)

    # -- timers -------------------------------------------------------------------------
    def claim_due(self, *, now: float, horizon: float, lease: float, limit: int) -> list[DueTimer]:
        args = {"now": now, "horizon": horizon, "lease": lease, "limit": limit,
                "job_prefix": self.keys.job(""), "max_doublings": LEASE_MAX_DOUBLINGS}  # fmt: skip
        flat = self.scripts["claim_due"](self.keys.fixed, args)
        return [
            DueTimer(flat[i], float(flat[i + 1]), float(flat[i + 2]), int(flat[i + 3]))
            for i in range(0, len(flat), 4)
        ]

    def due_score(self, request_id: str) -> float | None:
        score = self.redis.zscore(self.keys.due, request_id)
        return None if score is None else float(score)

    # -- reads --------------------------------------------------------------------------
    def get(self, request_id: str) -> Job | None:
        raw = self.redis.hgetall(self.keys.job(request_id))
        return Job.from_hash(raw) if raw else None

    def find(self, request_id: str, producer: str | None = None) -> Job | None:
        """A job by its id, or the job of ``producer``'s ``request_id`` (its record is
        ``producer/request_id`` where another producer's record holds the id)."""
        if producer is None:
            return self.get(request_id)
        scoped = self.get(scoped_job_id(producer, request_id))
        if scoped is not None:
            return scoped
        plain = self.get(request_id)
        return plain if plain is not None and plain.producer == producer else None

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
                pipe.hgetall(self.keys.job(request_id))
            yield from (Job.from_hash(raw) for raw in pipe.execute() if raw)
            start += batch

    def slot_holders(
        self, target: str, fields: Sequence[str]
    ) -> list[tuple[str, list[str | None]]]:
        """The target's slot holders (admitted, running, stopping), sorted, each with
        ``fields`` of its record (None where a field or the record is missing)."""
        holders = sorted(self.redis.smembers(self.keys.target(target).active))
        pipe = self.redis.pipeline(transaction=False)
        for request_id in holders:
            pipe.hmget(self.keys.job(request_id), list(fields))
        return list(zip(holders, pipe.execute(), strict=True))

    def active_count(self, target: str) -> int:
        return int(self.redis.scard(self.keys.target(target).active))

    def backlog_size(self, target: str) -> int:
        target_keys = self.keys.target(target)
        pipe = self.redis.pipeline(transaction=False)
        for priority in range(HIGHEST_PRIORITY + 1):
            pipe.zrange(target_keys.backlog_turns(priority), 0, -1)
        waiting = [(priority, p) for priority, producers in enumerate(pipe.execute())
                   for p in producers]  # fmt: skip
        for priority, producer in waiting:
            pipe.llen(target_keys.backlog(producer, priority))
        pipe.llen(target_keys.held)  # passed over while a rollout drains their evaluator
        return sum(int(n) for n in pipe.execute())

    def lock(self, request_id: str, lease: float) -> Any:
        """A short per-job lease so two deliveries of a task don't advance one job twice."""
        return self.redis.lock(self.keys.job_lock(request_id), timeout=lease, blocking=False)


def scoped_job_id(producer: str, request_id: str) -> str:
    """The job id of a request whose request_id another producer's record holds."""
    return f"{producer}/{request_id}"


def _registration(reply: list[Any]) -> Registration:
    outcome, state, job_id = reply
    return Registration(IntakeOutcome(outcome), JobState(state) if state else None, job_id)


def _drain_and_scenario_fields(request: EvaluationRequest) -> dict[str, Any]:
    """What admission, the watch and the scenario step read of a request: the evaluators
    its batch uses (held while a rollout drains one), whether the listing that sees it end
    holds its whole outcome, and how many scenario items it runs first."""
    fields: dict[str, Any] = {}
    if isinstance(request.evaluation, AgentCoreEvaluation):
        used = [e.evaluatorId for e in request.evaluation.evaluators or []]
        fields["evaluators"] = ",".join(dict.fromkeys(used))
        # Insights and a dataset run are reported by GetBatchEvaluation only; the rest of
        # the outcome (status, evaluationResults, errorDetails) is in the listing too.
        whole = not request.evaluation.reported_by_get_only()
        fields["listing_outcome"] = "1" if whole else ""
    if request.scenarios is not None:
        fields["scenario_items"] = len(request.scenarios.items)
    return fields
