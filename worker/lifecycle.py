"""What happens to a job, as plain functions over ``Services`` (tasks only call these).

intake -> backlog -> admission (a free slot) -> start -> polls on the Redis timer ->
terminal -> outcome published -> remote job deleted after retention.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from pydantic import ValidationError

from api_contracts import (
    EvaluationRequest,
    ReasonCode,
    describe_validation_error,
    reason_for_validation_error,
)
from worker.errors import (
    BackPressure,
    EvalqError,
    PermanentError,
    RemoteConflict,
    RemoteJobNotFound,
    RetryableError,
)
from worker.jobs import Job
from worker.outcomes import build_outcome
from worker.polling import track_progress
from worker.ratelimit import Operation
from worker.redaction import redact
from worker.services import Services
from worker.states import SLOT_STATES, JobState, RemoteStatus, is_terminal

log = structlog.stdlib.get_logger("evalq.lifecycle")


@dataclass(frozen=True)
class Accepted:
    request_id: str | None
    #: created | duplicate | requeued | conflict | rejected
    outcome: str
    state: str | None = None
    dead_letter_id: str | None = None


# -- intake ---------------------------------------------------------------------------------
def accept(svc: Services, raw: Any, *, task_name: str = "evals.submit") -> Accepted:
    """Validate a request and register it once; bad input becomes a dead letter."""
    now = svc.clock()
    try:
        request = EvaluationRequest.model_validate(raw)
    except ValidationError as exc:
        reason = reason_for_validation_error(exc)
        request_id = raw.get("request_id") if isinstance(raw, dict) else None
        letter = svc.dead_letters.record(
            reason=reason,
            error=describe_validation_error(exc),
            request=_raw(raw),
            request_id=request_id if isinstance(request_id, str) else None,
            now=now,
            task_name=task_name,
        )
        log.warning("request rejected", reason=reason.value, dead_letter_id=letter.dead_letter_id)
        return Accepted(None, "rejected", dead_letter_id=letter.dead_letter_id)

    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    settings = svc.settings
    backend = svc.backends.get(str(request.backend))
    registration = svc.store.register(
        request,
        remote_name=backend.remote_name(request) if backend is not None else None,
        now=now,
        deadline_at=now + (request.deadline_seconds or settings.default_deadline_seconds),
        # 0 is a valid retention (delete as soon as the outcome is out), not "unset".
        retention=float(
            settings.default_retention_seconds
            if request.retention_seconds is None
            else request.retention_seconds
        ),
    )
    if registration.outcome == "conflict":
        letter = svc.dead_letters.record(
            reason=ReasonCode.idempotency_conflict,
            error=f"request_id {request.request_id!r} was already accepted with another payload",
            request=request.model_dump(mode="json"),
            request_id=request.request_id,
            now=now,
            task_name=task_name,
            fingerprint=request.payload_hash(),
        )
        log.warning("idempotency conflict", dead_letter_id=letter.dead_letter_id)
        return Accepted(request.request_id, "conflict", registration.state, letter.dead_letter_id)
    log.info("request accepted", outcome=registration.outcome, producer=request.producer)
    if registration.outcome != "duplicate":
        admit_waiting(svc)
    return Accepted(request.request_id, registration.outcome, registration.state)


def admit_waiting(svc: Services) -> list[str]:
    """Fill free slots from the backlog and hand each admitted job to a worker."""
    admission = svc.store.admit(now=svc.clock(), quota=svc.settings.max_active_jobs)
    for request_id in admission.admitted + admission.expired:
        svc.dispatch(request_id, None, 0.0)
    return admission.admitted


def expire_backlog(svc: Services, limit: int | None = None) -> list[str]:
    """Give every request whose deadline passed in the backlog its EXPIRED outcome now
    (not only when admission reaches it); the deadline index keeps this O(due)."""
    now = svc.clock()
    overdue = svc.store.overdue_queued(now=now, limit=limit or svc.settings.tick_batch)
    expired = svc.store.expire_queued(overdue, now=now)
    for request_id in expired:
        svc.dispatch(request_id, None, 0.0)
    return expired


# -- the timer ------------------------------------------------------------------------------
def tick(svc: Services) -> int:
    """Hand every timer due before the next tick to a worker, with a short countdown."""
    now = svc.clock()
    settings = svc.settings
    timers = svc.store.claim_due(
        now=now,
        horizon=settings.tick_interval,
        lease=settings.lease_seconds,
        limit=settings.tick_batch,
    )
    for timer in timers:
        svc.dispatch(timer.request_id, timer.lease_token, max(0.0, timer.due_at - now))
    expire_backlog(svc)
    admit_waiting(svc)
    return len(timers)


# -- advancing one job ----------------------------------------------------------------------
def advance(svc: Services, request_id: str, lease_token: float | None = None) -> str:
    """Take the job's next step. Returns a word saying what happened (for logs and tests)."""
    structlog.contextvars.bind_contextvars(request_id=request_id)
    if lease_token is not None and not _holds_timer(svc, request_id, lease_token):
        return "stale"
    lock = svc.store.lock(request_id, svc.settings.lease_seconds)
    if not lock.acquire():
        return "busy"
    try:
        job = svc.store.get(request_id)
        if job is None:
            return "missing"
        if job.batch_evaluation_id:
            structlog.contextvars.bind_contextvars(batch_evaluation_id=job.batch_evaluation_id)
        step = _STEPS.get(job.state)
        if step is None:
            svc.store.transition(
                request_id, job.state, expected=frozenset({job.state}), clear_due=True
            )
            return "idle"
        return _run_step(svc, job, step)
    finally:
        try:
            lock.release()
        except Exception:
            log.debug("job lock expired before release")


def _holds_timer(svc: Services, request_id: str, lease_token: float) -> bool:
    score = svc.store.due_score(request_id)
    return score is not None and abs(score - lease_token) < 1e-3


def _run_step(svc: Services, job: Job, step: Callable[[Services, Job], str]) -> str:
    try:
        return step(svc, job)
    except RetryableError as exc:
        return _retry_later(svc, job, exc)
    except BackPressure as exc:
        now = svc.clock()
        svc.store.requeue(job, now=now, pause_until=now + svc.settings.quota_backoff)
        log.info("account quota full; job back on the backlog", error=str(exc))
        return "requeued"
    except PermanentError as exc:
        _dead_letter(svc, job, exc.reason, str(exc))
        return "dead"
    except redis.RedisError:
        raise  # the store itself is unreachable; the timer lease brings the job back
    except Exception as exc:
        # A bug (or a stored request a newer contract refuses): retried inside the same
        # budget, in case it is a race, then dead-lettered instead of looping forever.
        log.exception("unexpected error in a job step")
        error = RetryableError(redact(f"{type(exc).__name__}: {exc}"))
        return _retry_later(svc, job, error, exhausted=ReasonCode.internal_error)


def _retry_later(
    svc: Services,
    job: Job,
    exc: RetryableError,
    exhausted: ReasonCode = ReasonCode.retries_exhausted,
) -> str:
    now = svc.clock()
    settings = svc.settings
    attempts = job.attempts + (1 if exc.spends_attempt else 0)
    first = job.first_error_at or now
    if attempts > settings.retry_max_attempts or now - first > settings.retry_max_seconds:
        _dead_letter(
            svc,
            job,
            exhausted,
            f"gave up after {attempts} attempts: {exc}",
            attempts=attempts,
        )
        return "dead"
    step = min(settings.retry_max, settings.retry_initial * 2 ** max(attempts - 1, 0))
    delay = step / 2 + svc.rng.uniform(0, step / 2)
    svc.store.update(job.request_id, attempts=attempts, first_error_at=first, last_error=str(exc))
    svc.store.schedule(job.request_id, now + delay)
    log.info("retrying later", error=str(exc), attempts=attempts, delay=round(delay, 3))
    return "retry"


def _dead_letter(
    svc: Services, job: Job, reason: ReasonCode, error: str, attempts: int | None = None
) -> None:
    now = svc.clock()
    moved = svc.store.transition(
        job.request_id,
        JobState.DEAD,
        clear_due=True,
        release_slot=job.state in SLOT_STATES,
        updated_at=now,
        error=error,
    )
    if not moved:
        return
    letter = svc.dead_letters.record(
        reason=reason,
        error=error,
        request=job.request,
        request_id=job.request_id,
        now=now,
        task_name="evals.advance",
        attempts=attempts or max(job.attempts, 1),
        first_failed_at=job.first_error_at,
        replay_count=job.replays,
        fingerprint=job.payload_hash,
    )
    log.warning("dead-lettered", reason=reason.value, dead_letter_id=letter.dead_letter_id)
    admit_waiting(svc)


def _rate_limited(svc: Services, job: Job, operation: Operation) -> bool:
    wait = svc.rate_limits.acquire(operation)
    if wait > 0:
        svc.store.schedule(job.request_id, svc.clock() + wait)
    return wait > 0


def _start(svc: Services, job: Job) -> str:
    if _rate_limited(svc, job, "start"):
        return "rate_limited"
    remote = svc.backend(job.backend).start(job)
    now = svc.clock()
    first_poll = now + svc.poll_policy.backoff(0, svc.rng)
    svc.store.transition(
        job.request_id,
        JobState.RUNNING,
        expected=frozenset({JobState.ADMITTED}),
        due_at=min(first_poll, job.deadline_at),
        started_at=now,
        updated_at=now,
        batch_evaluation_id=remote.id,
        batch_evaluation_arn=remote.arn,
        batch_evaluation_name=remote.name,
        remote_status=remote.status,
        attempts=0,
        first_error_at=None,
    )
    log.info("remote job started", batch_evaluation_id=remote.id, status=remote.status)
    return "started"


def _poll(svc: Services, job: Job) -> str:
    if svc.clock() >= job.deadline_at:
        return _request_stop(svc, job)
    return _observe(svc, job)


def _observe(svc: Services, job: Job) -> str:
    if _rate_limited(svc, job, "get"):
        return "rate_limited"
    assert job.batch_evaluation_id is not None
    try:
        remote = svc.backend(job.backend).get(job.batch_evaluation_id)
    except RemoteJobNotFound:
        return _finish(svc, job, "FAILED", None, error="the remote job no longer exists")
    now = svc.clock()
    if is_terminal(remote.status):
        stopped_by_us = job.state == JobState.STOPPING and remote.status == RemoteStatus.STOPPED
        status = "EXPIRED" if stopped_by_us else remote.status
        error = "stopped at its deadline" if stopped_by_us else _remote_error(remote.body)
        return _finish(svc, job, status, remote.body, error=error)
    updates: dict[str, Any] = {
        "remote_status": remote.status,
        "polls": job.polls + 1,
        "updated_at": now,
        "attempts": 0,
        "first_error_at": None,
        **track_progress(job, remote, now),
    }
    job.polls += 1
    delay = svc.poll_policy.next_delay(job, now, svc.rng)
    if job.state == JobState.STOPPING:
        delay = svc.settings.poll_min
    svc.store.transition(
        job.request_id, job.state, expected=frozenset({job.state}), due_at=now + delay, **updates
    )
    return "polled"


def _request_stop(svc: Services, job: Job) -> str:
    if _rate_limited(svc, job, "stop"):
        return "rate_limited"
    assert job.batch_evaluation_id is not None
    try:
        svc.backend(job.backend).stop(job.batch_evaluation_id)
    except RemoteConflict:
        log.info("stop refused: the job already ended; reading its status")
    except RemoteJobNotFound:
        return _finish(svc, job, "FAILED", None, error="the remote job no longer exists")
    now = svc.clock()
    svc.store.transition(
        job.request_id,
        JobState.STOPPING,
        expected=frozenset({JobState.RUNNING}),
        due_at=now + svc.settings.poll_min,
        updated_at=now,
    )
    log.info("deadline passed; stop requested")
    return "stopping"


def _expire_unstarted(svc: Services, job: Job) -> str:
    """An admitted job whose deadline passed before it could start is never started."""
    return _finish(svc, job, "EXPIRED", None, error="deadline passed before the job started")


def _start_or_expire(svc: Services, job: Job) -> str:
    if svc.clock() >= job.deadline_at:
        return _expire_unstarted(svc, job)
    return _start(svc, job)


def _finish(
    svc: Services, job: Job, status: str, body: dict[str, Any] | None, *, error: str | None
) -> str:
    now = svc.clock()
    moved = svc.store.transition(
        job.request_id,
        JobState.FINISHED,
        expected=frozenset({job.state}),
        due_at=now,
        release_slot=True,
        finished_at=now,
        remote_ended_at=now,
        outcome_status=status,
        result=body,
        error=error,
        updated_at=now,
        remote_status=(body or {}).get("status", job.remote_status),
    )
    if not moved:
        return "raced"
    log.info("remote job ended", status=status)
    admit_waiting(svc)
    finished = svc.store.get(job.request_id)
    return _publish(svc, finished) if finished is not None else "missing"


def _publish(svc: Services, job: Job) -> str:
    now = svc.clock()
    outcome = build_outcome(job, now=now)
    queues = [svc.settings.results_queue, *job.reply_to]
    svc.publisher.publish(outcome, queues)
    retention_due = now + (job.retention_seconds if job.batch_evaluation_id else 0.0)
    svc.store.transition(
        job.request_id,
        JobState.PUBLISHED,
        expected=frozenset({JobState.FINISHED}),
        due_at=retention_due if job.batch_evaluation_id else None,
        clear_due=not job.batch_evaluation_id,
        published_at=now,
        updated_at=now,
    )
    delay = None if job.remote_ended_at is None else round(now - job.remote_ended_at, 4)
    log.info(
        "outcome published",
        status=outcome.status.value,
        queues=queues,
        end_to_outcome_seconds=delay,
    )
    return "published"


def _delete_after_retention(svc: Services, job: Job) -> str:
    now = svc.clock()
    due = (job.published_at or now) + job.retention_seconds
    if now < due:
        svc.store.schedule(job.request_id, due)
        return "waiting"
    if _rate_limited(svc, job, "delete"):
        return "rate_limited"
    assert job.batch_evaluation_id is not None
    try:
        svc.backend(job.backend).delete(job.batch_evaluation_id)
    except RemoteConflict:
        svc.store.schedule(job.request_id, now + svc.settings.poll_max)
        return "delete_refused"
    svc.store.transition(
        job.request_id,
        JobState.DELETED,
        expected=frozenset({JobState.PUBLISHED}),
        clear_due=True,
        deleted_at=now,
        updated_at=now,
    )
    log.info("remote job deleted after retention")
    return "deleted"


def _remote_error(body: dict[str, Any]) -> str | None:
    details = body.get("errorDetails") or []
    return "; ".join(str(d) for d in details) or None


def _raw(raw: Any) -> dict[str, Any] | str:
    if isinstance(raw, dict):
        return raw
    return raw if isinstance(raw, str) else repr(raw)


_STEPS: dict[JobState, Callable[[Services, Job], str]] = {
    JobState.ADMITTED: _start_or_expire,
    JobState.RUNNING: _poll,
    JobState.STOPPING: _observe,
    JobState.FINISHED: _publish,
    JobState.PUBLISHED: _delete_after_retention,
}

__all__ = [
    "Accepted",
    "EvalqError",
    "accept",
    "admit_waiting",
    "advance",
    "expire_backlog",
    "tick",
]
