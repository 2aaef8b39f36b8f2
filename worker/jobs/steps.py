"""A job's steps: what a worker does when the job's timer fires, one function per state.

``STEPS`` maps each state that has a step to it; ``worker.jobs.advance`` runs the step of
the job's state under the job's lock and turns the errors a step raises into retries,
back-pressure or dead letters. Every state change is a move of ``worker.jobs.states``:

* ADMITTED: :func:`start_or_expire` starts the remote job (``start``), or, past the
  deadline, finishes it as EXPIRED (``finish``);
* RUNNING: :func:`poll` reads the remote job: still running, the next poll is timed from
  its progress (``poll``); ended, it is finished (``finish``) and its outcome published
  (``publish``); past the deadline, a stop is requested (``stop``);
* STOPPING: :func:`observe` polls until the stop shows;
* FINISHED: :func:`publish` (after a crash between the two);
* PUBLISHED: :func:`delete_after_retention` (``delete``).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import structlog

from api_contracts import OutcomeStatus
from worker.backends.base import RemoteStatus, is_terminal
from worker.backends.ratelimit import Operation
from worker.errors import RemoteConflict, RemoteJobNotFound
from worker.jobs.admission import admit_waiting
from worker.jobs.outcomes import build_outcome
from worker.jobs.polling import track_progress
from worker.jobs.record import Job
from worker.jobs.states import JobState, Move
from worker.observability import metrics
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.steps")


class StepResult(StrEnum):
    """What one ``evals.advance`` did (logs and tests read it)."""

    STALE = "stale"  #: the timer was handled by someone else
    BUSY = "busy"  #: another task holds the job's lock
    MISSING = "missing"  #: no such job
    IDLE = "idle"  #: the job's state has no step; its timer was cleared
    RATE_LIMITED = "rate_limited"  #: the shared rate said wait; the timer says when
    STARTED = "started"
    POLLED = "polled"
    STOPPING = "stopping"
    RACED = "raced"  #: another delivery moved the job first
    PUBLISHED = "published"
    WAITING = "waiting"  #: retention not over yet
    DELETE_REFUSED = "delete_refused"  #: the remote job still runs; tried again later
    DELETED = "deleted"
    RETRY = "retry"  #: a retryable error; tried again later
    REQUEUED = "requeued"  #: the account is full; back on the backlog
    DEAD = "dead"  #: dead-lettered


Step = Callable[[Services, Job], StepResult]


def start_or_expire(svc: Services, job: Job) -> StepResult:
    if svc.clock() >= job.deadline_at:
        # An admitted job whose deadline passed before it could start is never started.
        return finish(svc, job, OutcomeStatus.EXPIRED, None,
                      error="deadline passed before the job started")  # fmt: skip
    if _rate_limited(svc, job, "start"):
        return StepResult.RATE_LIMITED
    remote = svc.backend(job.backend).start(job)
    now = svc.clock()
    first_poll = now + svc.poll_policy.backoff(0, svc.rng)
    started = svc.store.transition(
        job.request_id,
        Move.START,
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
    if started:
        metrics.job_started(svc.redis, svc.keys, job, now)
    log.info("remote job started", batch_evaluation_id=remote.id, status=remote.status)
    return StepResult.STARTED


def poll(svc: Services, job: Job) -> StepResult:
    if svc.clock() >= job.deadline_at:
        return request_stop(svc, job)
    return observe(svc, job)


def observe(svc: Services, job: Job) -> StepResult:
    if _rate_limited(svc, job, "get"):
        return StepResult.RATE_LIMITED
    assert job.batch_evaluation_id is not None
    try:
        remote = svc.backend(job.backend).get(job.batch_evaluation_id)
    except RemoteJobNotFound:
        return finish(svc, job, OutcomeStatus.FAILED, None,
                      error="the remote job no longer exists")  # fmt: skip
    now = svc.clock()
    if is_terminal(remote.status):
        stopped_by_us = job.state == JobState.STOPPING and remote.status == RemoteStatus.STOPPED
        status = OutcomeStatus.EXPIRED if stopped_by_us else OutcomeStatus(remote.status)
        error = "stopped at its deadline" if stopped_by_us else _remote_error(remote.body)
        return finish(svc, job, status, remote.body, error=error)
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
        job.request_id, Move.POLL, from_state=job.state, due_at=now + delay, **updates
    )
    return StepResult.POLLED


def request_stop(svc: Services, job: Job) -> StepResult:
    if _rate_limited(svc, job, "stop"):
        return StepResult.RATE_LIMITED
    assert job.batch_evaluation_id is not None
    try:
        svc.backend(job.backend).stop(job.batch_evaluation_id)
    except RemoteConflict:
        log.info("stop refused: the job already ended; reading its status")
    except RemoteJobNotFound:
        return finish(svc, job, OutcomeStatus.FAILED, None,
                      error="the remote job no longer exists")  # fmt: skip
    now = svc.clock()
    svc.store.transition(
        job.request_id, Move.STOP, due_at=now + svc.settings.poll_min, updated_at=now
    )
    log.info("deadline passed; stop requested")
    return StepResult.STOPPING


def finish(
    svc: Services,
    job: Job,
    status: OutcomeStatus,
    body: dict[str, Any] | None,
    *,
    error: str | None,
) -> StepResult:
    """Record the final status, free the slot, admit the next job, publish the outcome."""
    now = svc.clock()
    moved = svc.store.transition(
        job.request_id,
        Move.FINISH,
        from_state=job.state,
        due_at=now,
        finished_at=now,
        remote_ended_at=now,
        outcome_status=status.value,
        result=body,
        error=error,
        updated_at=now,
        remote_status=(body or {}).get("status", job.remote_status),
    )
    if not moved:
        return StepResult.RACED
    log.info("remote job ended", status=status.value)
    admit_waiting(svc)
    finished = svc.store.get(job.request_id)
    return publish(svc, finished) if finished is not None else StepResult.MISSING


def publish(svc: Services, job: Job) -> StepResult:
    now = svc.clock()
    outcome = build_outcome(job, now=now)
    queues = [svc.settings.results_queue, *job.reply_to]
    svc.publisher.publish(outcome, queues)
    kept = job.batch_evaluation_id is not None
    published = svc.store.transition(
        job.request_id,
        Move.PUBLISH,
        due_at=now + job.retention_seconds if kept else None,
        clear_due=not kept,
        published_at=now,
        updated_at=now,
    )
    if published:
        metrics.outcome_published(svc.redis, svc.keys, job, now)
    delay = None if job.remote_ended_at is None else round(now - job.remote_ended_at, 4)
    log.info(
        "outcome published",
        status=outcome.status.value,
        queues=queues,
        end_to_outcome_seconds=delay,
    )
    return StepResult.PUBLISHED


def delete_after_retention(svc: Services, job: Job) -> StepResult:
    now = svc.clock()
    due = (job.published_at or now) + job.retention_seconds
    if now < due:
        svc.store.schedule(job.request_id, due)
        return StepResult.WAITING
    if _rate_limited(svc, job, "delete"):
        return StepResult.RATE_LIMITED
    assert job.batch_evaluation_id is not None
    try:
        svc.backend(job.backend).delete(job.batch_evaluation_id)
    except RemoteConflict:
        svc.store.schedule(job.request_id, now + svc.settings.poll_max)
        return StepResult.DELETE_REFUSED
    svc.store.transition(
        job.request_id, Move.DELETE, clear_due=True, deleted_at=now, updated_at=now
    )
    log.info("remote job deleted after retention")
    return StepResult.DELETED


#: The step of each state that has one; a timer that fires in another state is cleared.
STEPS: dict[JobState, Step] = {
    JobState.ADMITTED: start_or_expire,
    JobState.RUNNING: poll,
    JobState.STOPPING: observe,
    JobState.FINISHED: publish,
    JobState.PUBLISHED: delete_after_retention,
}


def _rate_limited(svc: Services, job: Job, operation: Operation) -> bool:
    wait = svc.rate_limits.acquire(operation)
    if wait > 0:
        svc.store.schedule(job.request_id, svc.clock() + wait)
    return wait > 0


def _remote_error(body: dict[str, Any]) -> str | None:
    details = body.get("errorDetails") or []
    return "; ".join(str(d) for d in details) or None
