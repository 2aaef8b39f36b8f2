"""``evals.advance``: take one job's next step, and decide what each failure means.

The step runs under the job's lock (two deliveries of one timer never step a job twice).
Errors follow the one hierarchy of ``worker.errors``: retryable ones are retried on the
job's timer inside the retry budget, back-pressure puts the job back on the backlog, and
permanent ones (and an exhausted budget) make the job a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
import structlog

from api_contracts import ReasonCode
from worker import task_names
from worker.errors import BackPressure, PermanentError, RetryableError
from worker.jobs.admission import admit_waiting
from worker.jobs.record import Job
from worker.jobs.results import Step, StepResult
from worker.jobs.states import JobState, Move
from worker.jobs.steps import STEPS
from worker.observability.redaction import redact
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.advance")


def advance(
    svc: Services,
    request_id: str,
    lease_token: float | None = None,
    *,
    step_of: Callable[[JobState], Step | None] | None = None,
    lease: float | None = None,
) -> StepResult:
    """Take the job's next step. ``lease_token`` is the timer's score when a tick handed
    it out: a task that finds another score knows someone else handled the timer.
    ``step_of`` picks the step of a state (``evals.run`` picks the synchronous run),
    ``lease`` how long the job's lock may be held (the step's longest call)."""
    structlog.contextvars.bind_contextvars(request_id=request_id)
    if lease_token is not None and not _holds_timer(svc, request_id, lease_token):
        return StepResult.STALE
    lock = svc.store.lock(request_id, lease or svc.settings.lease_seconds)
    if not lock.acquire():
        return StepResult.BUSY
    try:
        job = svc.store.get(request_id)
        if job is None:
            return StepResult.MISSING
        if job.batch_evaluation_id:
            structlog.contextvars.bind_contextvars(batch_evaluation_id=job.batch_evaluation_id)
        step = (step_of or STEPS.get)(job.state)
        if step is None and step_of is not None:
            return StepResult.RACED  # another step moved the job first
        if step is None:
            svc.store.transition(job, Move.DISARM, from_state=job.state, clear_due=True)
            return StepResult.IDLE
        return _run_step(svc, job, step)
    finally:
        try:
            lock.release()
        except Exception:
            log.debug("job lock expired before release")


def _holds_timer(svc: Services, request_id: str, lease_token: float) -> bool:
    score = svc.store.due_score(request_id)
    return score is not None and abs(score - lease_token) < 1e-3


def _run_step(svc: Services, job: Job, step: Step) -> StepResult:
    try:
        return step(svc, job)
    except RetryableError as exc:
        return _retry_later(svc, job, exc)
    except BackPressure as exc:
        now = svc.clock()
        svc.store.requeue(job, now=now, pause_until=now + svc.settings.quota_backoff)
        log.info("account quota full; job back on the backlog", error=str(exc))
        return StepResult.REQUEUED
    except PermanentError as exc:
        _dead_letter(svc, job, exc.reason, str(exc))
        return StepResult.DEAD
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
) -> StepResult:
    now = svc.clock()
    settings = svc.settings
    attempts = job.attempts + (1 if exc.spends_attempt else 0)
    first = job.first_error_at or now
    if attempts > settings.retry_max_attempts or now - first > settings.retry_max_seconds:
        error = f"gave up after {attempts} attempts: {exc}"
        _dead_letter(svc, job, exhausted, error, attempts=attempts)
        return StepResult.DEAD
    step = min(settings.retry_max, settings.retry_initial * 2 ** max(attempts - 1, 0))
    delay = step / 2 + svc.rng.uniform(0, step / 2)
    svc.store.update(job.request_id, attempts=attempts, first_error_at=first,
                     last_error=redact(str(exc)))  # fmt: skip
    svc.store.schedule(job.request_id, now + delay)
    log.info("retrying later", error=str(exc), attempts=attempts, delay=round(delay, 3))
    return StepResult.RETRY


def _dead_letter(
    svc: Services, job: Job, reason: ReasonCode, error: str, attempts: int | None = None
) -> None:
    now = svc.clock()
    if not svc.store.transition(job, Move.DEAD_LETTER, clear_due=True, updated_at=now, error=error):
        return
    letter = svc.dead_letters.record(
        reason=reason,
        error=error,
        request=job.request,
        request_id=job.request_id,
        now=now,
        task_name=task_names.ADVANCE,
        attempts=attempts or max(job.attempts, 1),
        first_failed_at=job.first_error_at,
        replay_count=job.replays,
        fingerprint=job.payload_hash,
        target=job.target,
    )
    log.warning("dead-lettered", reason=reason.value, dead_letter_id=letter.dead_letter_id)
    admit_waiting(svc, job.target)
