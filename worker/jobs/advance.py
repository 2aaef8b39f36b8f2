"""``evals.advance``: take one job's next step, and decide what each failure means.

The step runs under the job's lock (two deliveries of one timer never step a job twice).
Errors follow the one hierarchy of ``worker.errors``: retryable ones are retried on the
job's timer inside the retry budget, back-pressure puts the job back on the backlog, and
permanent ones (and an exhausted budget) make the job a dead letter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
import structlog

from api_contracts import ReasonCode
from worker import task_names
from worker.errors import BackPressure, PermanentError, RetryableError
from worker.jobs import moves
from worker.jobs.outcomes import outcome_of
from worker.jobs.record import Job
from worker.jobs.results import Step, StepResult
from worker.jobs.states import JobState, Move, sources
from worker.jobs.steps import STEPS
from worker.observability import metrics
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
    result = _locked_step(svc, request_id, step_of, lease)
    if result == StepResult.HANDED_OFF:
        svc.dispatch_sync(request_id)  # after the lock is let go: the run may take it now
    return result


def _locked_step(
    svc: Services,
    request_id: str,
    step_of: Callable[[JobState], Step | None] | None,
    lease: float | None,
) -> StepResult:
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
            moves.move(svc, job, Move.DISARM, from_state=job.state, clear_due=True)
            return StepResult.IDLE
        result = _run_step(svc, job, step)
        _count_stall(svc, job, result)
        return result
    finally:
        try:
            lock.release()
        except Exception:
            log.debug("job lock expired before release")


#: What a step ends in when its timer fired and it moved nothing (a retryable error,
#: throttling included, which spends no attempt): a stall.
STALLS = frozenset({StepResult.RETRY, StepResult.DELETE_REFUSED})
#: Results that say nothing of the job itself (it was someone else's turn, a shared rate
#: said wait, or its call went to the synchronous queue): they neither count as a stall
#: nor end a run of them (a hand-off ended each, so a throttled run never backed off).
NEUTRAL = frozenset({StepResult.RATE_LIMITED, StepResult.RACED, StepResult.HANDED_OFF})


def _count_stall(svc: Services, job: Job, result: StepResult) -> None:
    """Count the firings in a row that moved the job nothing (``Keys.stalled``, a metric
    and an alert); any step that does something ends the run."""
    if result in STALLS:
        stalls = svc.store.stalled(job.request_id)
        if stalls == svc.settings.stall_alert_after:
            log.error("job stalled: its timer keeps firing without moving it",
                      stalls=stalls, state=job.state.value)  # fmt: skip
    elif job.stalls and result not in NEUTRAL:
        svc.store.unstalled(job.request_id)


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
        if moves.requeue(svc, job, now=now, pause_until=now + svc.settings.quota_backoff):
            log.info("account quota full; job back on the backlog", error=str(exc))
            return StepResult.REQUEUED
        # Back-pressure where there is no backlog to go back to (a running job, a
        # published one): an error like any other, inside the retry budget.
        return _retry_later(svc, job, RetryableError(f"quota full: {exc}"))
    except PermanentError as exc:
        return dead_letter(svc, job, exc.reason, str(exc))
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
        return dead_letter(svc, job, exhausted, error, attempts=attempts)
    # Throttling spends no attempt but backs off all the same, by the firings in a row
    # that moved nothing: a service that keeps throttling is asked ever less often (not
    # every retry_initial until the budget's time is spent).
    tries = min(max(attempts, job.stalls + 1), 32)
    step = min(settings.retry_max, settings.retry_initial * 2 ** (tries - 1))
    # Never sooner than the service asked (Retry-After).
    delay = max(step / 2 + svc.rng.uniform(0, step / 2), exc.retry_after or 0.0)
    svc.store.update(job.request_id, attempts=attempts, first_error_at=first,
                     last_error=redact(str(exc)))  # fmt: skip
    svc.store.schedule(job.request_id, now + delay)
    log.info("retrying later", error=str(exc), attempts=attempts, delay=round(delay, 3))
    return StepResult.RETRY


def dead_letter(
    svc: Services, job: Job, reason: ReasonCode, error: str, attempts: int | None = None
) -> StepResult:
    """Move the job to DEAD and record its dead letter; a move the table refuses (the
    job moved meanwhile) is logged at error and counted, never passed over in silence."""
    now = svc.clock()
    ended = job.state in (JobState.FINISHED, JobState.PUBLISHED)
    # The outcome of a job whose end is known stays as it was (a replay republishes it).
    fields: dict[str, Any] = {"updated_at": now, "dead_from": job.state.value,
                              "last_error" if ended else "error": error}  # fmt: skip
    moved = job.state in sources(Move.DEAD_LETTER) and moves.move(
        svc, job, Move.DEAD_LETTER, from_state=job.state, clear_due=True, **fields
    )
    if not moved:
        log.error("dead-letter move refused: the job is no longer where its step was",
                  state=job.state.value, reason=reason.value, error=error)  # fmt: skip
        metrics.move_refused(svc.redis, svc.keys, Move.DEAD_LETTER.value, job)
        return StepResult.RACED
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
        job_state=job.state.value,
        outcome=outcome_of(job, now=now) if ended else None,
    )
    svc.store.update(job.request_id, dead_letter_id=letter.dead_letter_id)
    log.warning("dead-lettered", reason=reason.value, dead_letter_id=letter.dead_letter_id,
                state=job.state.value)  # fmt: skip
    return StepResult.DEAD
