"""evalq's metrics: their names, labels and buckets, and how they are recorded in Redis.

Counters and histograms must be the cluster's truth: shared by every worker process on
every host and kept through restarts. prometheus_client's multiprocess mode shares them
between the processes of one host only, so they live in Redis instead: one hash per
family (``Keys.metrics``), whose fields are the label values joined by ``|`` and whose
values are counts. A histogram keeps one field per bucket (not cumulative: one
``HINCRBY`` per observation) plus ``...|sum``. ``evalq exporter``
(``worker.runtime.exporter``) turns the hashes into Prometheus families.

Recording is queued on a pipeline the caller already sends where one exists (intake
counts inside its own script, ``jobs/scripts/register.lua``); nothing here may fail the
work it measures, so Redis errors while recording are logged and dropped.

Label values are bounded: backends are the contract's names, targets are the configured
targets a job was routed to (a request intake never routed, rejected or without a
target, is counted under ``unknown``), schedules are the schedules file's names (each
checked when the file is read), and no label ever carries a request id.
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Protocol

import redis
import structlog

from api_contracts import Backend, EvaluationRequest
from worker.errors import (
    BackPressure,
    PermanentError,
    RemoteConflict,
    RemoteJobNotFound,
    RetryableError,
    Throttled,
)
from worker.keys import DEFAULT_TARGET, Keys

log = structlog.stdlib.get_logger("evalq.metrics")

#: Joins label values in a hash field (no label value can hold it; see ``label``).
SEP = "|"
UNKNOWN = "unknown"
_TARGET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_KNOWN_BACKENDS = frozenset(backend.value for backend in Backend)


@dataclass(frozen=True)
class Family:
    """One metric family kept in Redis. ``name`` is the Prometheus name without
    ``_total`` (prometheus_client adds it to counters)."""

    name: str
    kind: Literal["counter", "histogram"]
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


REQUESTS = Family(
    "evalq_requests",
    "counter",
    "Requests taken by intake, by what intake did with them.",
    ("outcome", "backend", "target"),
)
OUTCOMES = Family(
    "evalq_outcomes",
    "counter",
    "Outcomes published (once per job), by final status.",
    ("status", "backend", "target"),
)
REMOTE_CALLS = Family(
    "evalq_remote_calls",
    "counter",
    "Calls to remote services, by operation and result.",
    ("operation", "result", "backend", "target"),
)
REMOTE_CALL_DURATION = Family(
    "evalq_remote_call_duration_seconds",
    "histogram",
    "Latency of remote calls (every result), seconds.",
    ("operation", "backend", "target"),
    (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
#: Seconds to days: batch evaluations run from minutes to their deadline (24 h default).
_LONG = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
         14400.0, 43200.0, 86400.0, 172800.0)  # fmt: skip
JOB_DURATION = Family(
    "evalq_job_duration_seconds",
    "histogram",
    "From a request's acceptance to its outcome's publication, seconds.",
    ("status", "backend", "target"),
    _LONG,
)
QUEUE_WAIT = Family(
    "evalq_queue_wait_seconds",
    "histogram",
    "From a request's acceptance to its remote job's start, seconds.",
    ("backend", "target"),
    (0.1, 0.5, *_LONG),
)
DEAD_LETTERS_RECORDED = Family(
    "evalq_dead_letters_recorded",
    "counter",
    "Failures recorded as dead letters (a repeat of one entry counts again).",
    ("reason", "backend", "target"),
)
REFUSED_MOVES = Family(
    "evalq_refused_moves",
    "counter",
    "Moves a step needed that the state table refused (the job had moved on): a dead "
    "letter that could not be recorded this way is an alert.",
    ("move", "state", "backend", "target"),
)
REPLY_QUEUES_DROPPED = Family(
    "evalq_reply_queues_dropped",
    "counter",
    "Reply queues an outcome could not be published to and was given up on (the job's "
    "record says why; evals.results and the other queues got it).",
    ("backend", "target"),
)
JANITOR_RUNS = Family(
    "evalq_janitor_runs",
    "counter",
    "Janitor sweeps, by result: ok, skipped (another held the lock) or failed.",
    ("result",),
)
JANITOR_ACTIONS = Family(
    "evalq_janitor_actions",
    "counter",
    "What janitor sweeps did, by action (expired, stopped, deleted_early, deferred, ...).",
    ("action",),
)
SCHEDULE_SLOTS = Family(
    "evalq_schedule_slots",
    "counter",
    "Slots of evalq's schedules, by result: submitted (handed to intake once) or missed "
    "(passed over after a downtime, as the schedule's catch_up says).",
    ("schedule", "result"),
)
TIMER_LEASES_EXPIRED = Family(
    "evalq_timer_leases_expired",
    "counter",
    "Timers a tick handed out again because their task had not come back within the "
    "lease: lost with a killed worker, or still waiting on a control queue longer than "
    "EVALQ_LEASE_SECONDS. Each time, that timer's lease doubles.",
    (),
)

FAMILIES: tuple[Family, ...] = (
    REQUESTS,
    OUTCOMES,
    REMOTE_CALLS,
    REMOTE_CALL_DURATION,
    JOB_DURATION,
    QUEUE_WAIT,
    DEAD_LETTERS_RECORDED,
    REFUSED_MOVES,
    REPLY_QUEUES_DROPPED,
    JANITOR_RUNS,
    JANITOR_ACTIONS,
    SCHEDULE_SLOTS,
    TIMER_LEASES_EXPIRED,
)


# -- labels ---------------------------------------------------------------------------------
def backend_label(value: Any) -> str:
    return value if isinstance(value, str) and value in _KNOWN_BACKENDS else UNKNOWN


def target_label(value: Any) -> str:
    return value if isinstance(value, str) and _TARGET_NAME.match(value) else UNKNOWN


class Job(Protocol):
    """What a metric reads of a job record (``worker.jobs.record.Job``)."""

    @property
    def state(self) -> Enum: ...
    @property
    def backend(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def accepted_at(self) -> float: ...
    @property
    def outcome_status(self) -> str | None: ...


def labels_of(job: Job) -> tuple[str, str]:
    """(backend, target) of a job: the target it was routed to."""
    return backend_label(job.backend), target_label(job.target)


def field(*values: str) -> str:
    return SEP.join(v.replace(SEP, "_") for v in values)


def bucket_field(family: Family, value: float, labels: tuple[str, ...]) -> str:
    """The hash field of the (non-cumulative) bucket ``value`` falls in."""
    index = bisect.bisect_left(family.buckets, value)
    bound = repr(family.buckets[index]) if index < len(family.buckets) else "+Inf"
    return field(*labels, bound)


# -- recording (queued on a pipeline or client the caller gives) ----------------------------
def count(pipe: Any, keys: Keys, family: Family, *labels: str, by: int = 1) -> None:
    pipe.hincrby(keys.metrics(family.name), field(*labels), by)


def observe(pipe: Any, keys: Keys, family: Family, value: float, *labels: str) -> None:
    key = keys.metrics(family.name)
    value = max(0.0, value)
    pipe.hincrby(key, bucket_field(family, value, labels), 1)
    pipe.hincrbyfloat(key, field(*labels, "sum"), value)


def request_labels(request: EvaluationRequest, target: str) -> str:
    """The label values register.lua appends to the outcome it counts."""
    return field(backend_label(str(request.backend)), target_label(target))


def count_request(pipe: Any, keys: Keys, outcome: str, backend: Any) -> None:
    """An intake outcome decided outside register.lua (``rejected``: never routed);
    ``backend`` as the request named it (any value: only the contract's are labels)."""
    count(pipe, keys, REQUESTS, outcome, backend_label(backend), UNKNOWN)


def count_dead_letter(pipe: Any, keys: Keys, reason: str, request: Any, target: str | None) -> None:
    """A dead letter recorded; ``target`` is the one its job ran in, if it was routed."""
    count(pipe, keys, DEAD_LETTERS_RECORDED, *dead_letter_labels(reason, request, target))


def dead_letter_labels(reason: str, request: Any, target: str | None) -> tuple[str, str, str]:
    """``(reason, backend, target)`` of a dead letter of ``request``."""
    backend = request.get("backend") if isinstance(request, Mapping) else None
    return reason, backend_label(backend), UNKNOWN if target is None else target_label(target)


def _send(client: redis.Redis, what: str, queue: Any) -> None:
    """Run the writes ``queue`` puts on one pipeline; a failure is logged, never raised."""
    try:
        pipe = client.pipeline(transaction=False)
        queue(pipe)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("metric not recorded", metric=what, error=str(exc))


def job_started(client: redis.Redis, keys: Keys, job: Job, started_at: float) -> None:
    """A job's remote job started: how long it waited since its acceptance."""
    labels = labels_of(job)
    wait = started_at - job.accepted_at
    _send(client, QUEUE_WAIT.name, lambda p: observe(p, keys, QUEUE_WAIT, wait, *labels))


def outcome_published(client: redis.Redis, keys: Keys, job: Job, published_at: float) -> None:
    """A job's outcome was published (the move that records it succeeded: once per job)."""
    backend, target = labels_of(job)
    status = job.outcome_status or "FAILED"
    duration = published_at - job.accepted_at

    def queue(pipe: Any) -> None:
        count(pipe, keys, OUTCOMES, status, backend, target)
        observe(pipe, keys, JOB_DURATION, duration, status, backend, target)

    _send(client, OUTCOMES.name, queue)


def move_refused(client: redis.Redis, keys: Keys, move: str, job: Job) -> None:
    """A move a step needed was refused by the state table."""
    labels = (move, job.state.value, *labels_of(job))
    _send(client, REFUSED_MOVES.name, lambda p: count(p, keys, REFUSED_MOVES, *labels))


def reply_queue_dropped(client: redis.Redis, keys: Keys, job: Job) -> None:
    """A reply queue kept refusing a job's outcome and was given up on."""
    labels = labels_of(job)
    _send(client, REPLY_QUEUES_DROPPED.name,
          lambda p: count(p, keys, REPLY_QUEUES_DROPPED, *labels))  # fmt: skip


def timer_leases_expired(client: redis.Redis, keys: Keys, count_of: int) -> None:
    """A tick handed out ``count_of`` timers again whose lease had run out."""
    _send(client, TIMER_LEASES_EXPIRED.name,
          lambda p: count(p, keys, TIMER_LEASES_EXPIRED, by=count_of))  # fmt: skip


def tick_done(client: redis.Redis, keys: Keys, now: float) -> None:
    _send(client, "last_tick", lambda p: p.set(keys.last_tick, repr(now)))


def janitor_run(
    client: redis.Redis,
    keys: Keys,
    result: Literal["ok", "skipped", "failed"],
    *,
    actions: Mapping[str, int] | None = None,
    remote_jobs: Mapping[str, int] | None = None,
    now: float | None = None,
) -> None:
    """A janitor sweep ended; ``remote_jobs``: the jobs each listed target's account held."""

    def queue(pipe: Any) -> None:
        count(pipe, keys, JANITOR_RUNS, result)
        for action, n in (actions or {}).items():
            if n:
                count(pipe, keys, JANITOR_ACTIONS, action, by=n)
        if result == "ok":
            state = {f"remote_jobs:{target}": str(n) for target, n in (remote_jobs or {}).items()}
            state["finished_at"] = repr(time.time() if now is None else now)
            pipe.hset(keys.janitor_state, mapping=state)

    _send(client, JANITOR_RUNS.name, queue)


# -- remote calls ---------------------------------------------------------------------------
def call_result(exc: BaseException | None) -> str:
    """A remote call's result label, from the error hierarchy's class of its failure."""
    match exc:
        case None:
            return "ok"
        case Throttled():
            return "throttled"
        case RetryableError():
            return "retryable_error"
        case BackPressure():
            return "quota_full"
        case RemoteJobNotFound():
            return "not_found"
        case RemoteConflict():
            return "conflict"
        case PermanentError():
            return "rejected"
        case _:
            return "error"


class RemoteCalls:
    """Counts and times one backend's remote calls (``with calls.measure(op): ...``)."""

    def __init__(
        self, client: redis.Redis | None, keys: Keys, backend: str, target: str = DEFAULT_TARGET
    ) -> None:
        self._client = client
        self._keys = keys
        self._labels = (backend_label(backend), target_label(target))

    @contextmanager
    def measure(self, operation: str) -> Iterator[None]:
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._record(operation, call_result(error), time.perf_counter() - started)

    def _record(self, operation: str, result: str, seconds: float) -> None:
        if self._client is None:
            return
        keys, labels = self._keys, self._labels

        def queue(pipe: Any) -> None:
            count(pipe, keys, REMOTE_CALLS, operation, result, *labels)
            observe(pipe, keys, REMOTE_CALL_DURATION, seconds, operation, *labels)

        _send(self._client, REMOTE_CALLS.name, queue)


#: Records nothing (unit tests that build a backend by hand).
NO_CALL_METRICS = RemoteCalls(None, Keys(), "agentcore")
