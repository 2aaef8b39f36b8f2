"""A job's steps: what a worker does when the job's timer fires, one function per state.

``STEPS`` maps each state that has a step to it; ``worker.jobs.advance`` runs the step of
the job's state under the job's lock and turns the errors a step raises into retries,
back-pressure or dead letters. Every state change is a move of ``worker.jobs.states``:

* ADMITTED: ``start_or_expire`` (``worker.jobs.start``) starts the remote job exactly once
  (``start``), or, past the deadline, finishes it as EXPIRED (``finish``);
* RUNNING: :func:`poll` reads the remote job: still running, the next poll is timed from
  its progress (``poll``); ended, it is finished (``finish``) and its outcome published
  (``publish``, ``worker.jobs.finish``); past the deadline, a stop is requested (``stop``),
  or, where the service cannot stop a run, the run is deleted and the job finished;
* STOPPING: :func:`observe` polls until the stop shows (asking again while the remote
  job still runs, a dead letter past the retry budget's time);
* FINISHED: :func:`publish` (after a crash between the two);
* PUBLISHED: :func:`delete_after_retention` (``delete``; a service that deletes in bulk
  leaves it to the janitor; a remote job still running is asked to stop first); a delete
  refused for good makes it a dead letter whose replay deletes again (``retry_delete``);
* PREPARING: ``run_items`` (``worker.jobs.scenarios``) drives a request's scenario items,
  then puts it in the backlog (``enqueue``) or finishes it (``finish``);
* DRAINING and UPDATING: an evaluator rollout (``worker.jobs.rollouts``): the drain, then
  UpdateEvaluator (``update``), then GetEvaluator until it settles (``poll``, ``finish``).
"""

from __future__ import annotations

from typing import Any

import structlog

from api_contracts import OutcomeStatus
from worker.backends.base import STOPPABLE_STATUSES, Backend, RemoteStatus, is_terminal
from worker.errors import EvalqError, RemoteConflict, RemoteJobNotFound
from worker.jobs import moves
from worker.jobs.finish import finish, publish
from worker.jobs.polling import track_progress
from worker.jobs.record import Job
from worker.jobs.remote import backend_of, rate_limited
from worker.jobs.results import Step, StepResult
from worker.jobs.rollouts import await_active, drain_then_update
from worker.jobs.scenarios import run_items
from worker.jobs.start import start_or_expire
from worker.jobs.states import JobState, Move
from worker.jobs.watch import is_watched
from worker.observability.redaction import redact
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.steps")


def poll(svc: Services, job: Job) -> StepResult:
    if job.listed_result is not None:
        # The listing saw it end, and its summary is the whole outcome.
        return _ended(svc, job, job.listed_result, job.remote_status or "")
    if svc.clock() >= job.deadline_at or job.cancel_requested_at is not None:
        return request_stop(svc, job)
    return observe(svc, job)


def observe(svc: Services, job: Job) -> StepResult:
    if job.listed_result is not None:
        return _ended(svc, job, job.listed_result, job.remote_status or "")
    target = svc.targets[job.target]
    running = job.state == JobState.RUNNING
    if running and not is_terminal(job.remote_status or "") and is_watched(svc, target):
        # The target's listing watches this job and hands it out when it ends (a
        # stopping one polls on its own: past its deadline, a recheck would be due at
        # once, every tick, with nobody asking for the stop again).
        recheck = min(svc.clock() + svc.settings.watch_recheck_seconds, job.deadline_at)
        moves.move(svc, job, Move.POLL, from_state=job.state, due_at=recheck)
        return StepResult.WATCHED
    if rate_limited(svc, job, "get"):
        return StepResult.RATE_LIMITED
    assert job.batch_evaluation_id is not None
    try:
        remote = backend_of(svc, job).get(job.batch_evaluation_id, job.remote_scope)
    except RemoteJobNotFound:
        return _vanished(svc, job)
    now = svc.clock()
    if is_terminal(remote.status):
        return _ended(svc, job, remote.body, remote.status)
    if job.state == JobState.STOPPING:
        return _not_stopped_yet(svc, job, remote.status, now)
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
    moves.move(svc, job, Move.POLL, from_state=job.state, due_at=now + delay, **updates)
    return StepResult.POLLED


def request_stop(svc: Services, job: Job) -> StepResult:
    backend = backend_of(svc, job)
    if not backend.capabilities.can_stop:
        return _delete_at_deadline(svc, job, backend)
    if rate_limited(svc, job, "stop"):
        return StepResult.RATE_LIMITED
    assert job.batch_evaluation_id is not None
    try:
        backend.stop(job.batch_evaluation_id, job.remote_scope)
    except RemoteConflict:
        log.info("stop refused: the job already ended; reading its status")
    except RemoteJobNotFound:
        return _vanished(svc, job)
    now = svc.clock()
    moves.move(svc, job, Move.STOP, due_at=now + svc.settings.poll_min, updated_at=now)
    log.info(f"{_why_stopped(job)}; stop requested")
    return StepResult.STOPPING


def _not_stopped_yet(svc: Services, job: Job, status: str, now: float) -> StepResult:
    """A stopped job's remote job has not ended. Still running (the stop was refused
    with 409 while it ran), it is asked to stop again. Each poll waits as long again as the
    stop has taken so far, and past the retry budget's time the job is a dead letter
    (``remote_conflict``) whose replay polls and stops again: before, a refused stop left
    the job STOPPING, polled every poll_min for ever while its remote job ran on."""
    since = job.first_error_at or now
    if now - since > svc.settings.retry_max_seconds:
        raise RemoteConflict(f"the remote job is still {status} {round(now - since)} s "
                             "after its stop was asked")  # fmt: skip
    if status in STOPPABLE_STATUSES:
        if rate_limited(svc, job, "stop"):
            return StepResult.RATE_LIMITED
        assert job.batch_evaluation_id is not None
        try:
            backend_of(svc, job).stop(job.batch_evaluation_id, job.remote_scope)
        except RemoteConflict:
            log.info("stop refused again while the remote job runs", status=status)
        except RemoteJobNotFound:
            return _vanished(svc, job)
    delay = min(svc.settings.poll_max, max(svc.settings.poll_min, now - since))
    moves.move(svc, job, Move.POLL, from_state=JobState.STOPPING, due_at=now + delay,
                         remote_status=status, polls=job.polls + 1, first_error_at=since,
                         updated_at=now)  # fmt: skip
    return StepResult.POLLED


def _delete_at_deadline(svc: Services, job: Job, backend: Backend) -> StepResult:
    """A service that cannot stop a run: at the deadline (or a cancel) the run is deleted
    and the outcome is EXPIRED (CANCELLED)."""
    if rate_limited(svc, job, "delete"):
        return StepResult.RATE_LIMITED
    assert job.batch_evaluation_id is not None
    try:
        backend.delete(job.batch_evaluation_id, job.remote_scope)
    except RemoteConflict as exc:
        return _expire_undeleted(svc, job, exc)
    now = svc.clock()
    log.info(f"{_why_stopped(job)}; the run was deleted (the service cannot stop one)")
    return finish(svc, job, _stopped_status(job), None, deleted_at=now,
                  error=f"{_why_stopped(job)}: the run was deleted (the service cannot stop "
                  "one)")  # fmt: skip


def _expire_undeleted(svc: Services, job: Job, refused: RemoteConflict) -> StepResult:
    """The service refused to delete the run at its deadline or cancel (409, as after
    retention): the job ends EXPIRED (CANCELLED) all the same, and its retention is cut to
    nothing, so the retention step deletes the run as soon as the service lets it."""
    log.warning(f"{_why_stopped(job)}; the service refused to delete the run, deleted later",
                error=str(refused))  # fmt: skip
    return finish(svc, job, _stopped_status(job), None, retention_seconds=0.0,
                  error=f"{_why_stopped(job)}; deleting the run was refused ({refused}), "
                  "it is deleted once the service allows it")  # fmt: skip


def _stopped_status(job: Job) -> OutcomeStatus:
    """What a job evalq stopped ends as: CANCELLED when it was cancelled, else EXPIRED."""
    return OutcomeStatus.CANCELLED if job.cancel_requested_at is not None else OutcomeStatus.EXPIRED


def _why_stopped(job: Job) -> str:
    if job.cancel_requested_at is not None:
        return job.cancel_reason or "cancelled"
    return "deadline passed"


def delete_after_retention(svc: Services, job: Job) -> StepResult:
    now = svc.clock()
    due = (job.published_at or now) + job.retention_seconds
    if now < due:
        svc.store.schedule(job.request_id, due)
        return StepResult.WAITING
    backend = backend_of(svc, job)
    if backend.capabilities.bulk_delete:
        # The janitor deletes such runs in bulk, one call per scope per sweep.
        svc.store.queue_deletion(job, now=now)
        return StepResult.WAITING
    if rate_limited(svc, job, "delete"):
        return StepResult.RATE_LIMITED
    assert job.batch_evaluation_id is not None
    try:
        backend.delete(job.batch_evaluation_id, job.remote_scope)
    except RemoteConflict as exc:
        # A run the service still works on (Aymara scores after a deadline delete was
        # refused): tried again every poll_max, a stall each time, and past the retry
        # budget's time a dead letter whose replay deletes again.
        first = job.first_error_at or now
        if now - first > svc.settings.retry_max_seconds:
            raise
        log.warning("delete refused: the remote job still runs; tried again later",
                    error=str(exc), retry_in=svc.settings.poll_max)  # fmt: skip
        if backend.capabilities.can_stop:
            _stop_before_delete(svc, job, backend)
        svc.store.update(job.request_id, first_error_at=first, last_error=redact(str(exc)))
        svc.store.schedule(job.request_id, now + svc.settings.poll_max)
        return StepResult.DELETE_REFUSED
    moves.move(svc, job, Move.DELETE, clear_due=True, deleted_at=now, updated_at=now)
    log.info("remote job deleted after retention")
    return StepResult.DELETED


def _stop_before_delete(svc: Services, job: Job, backend: Backend) -> None:
    """A published job's remote job still runs (taken for gone while it ran on): the
    service deletes no running job, so it is asked to stop, and the next try deletes it
    (it was refused until a dead letter whose replay met the same refusal, while the job
    ran on, billed). Any refusal of the stop is left to that delete."""
    if svc.targets[job.target].rate_limits.acquire("stop") > 0:
        return  # the next try asks again
    assert job.batch_evaluation_id is not None
    try:
        backend.stop(job.batch_evaluation_id, job.remote_scope)
    except EvalqError as exc:
        log.info("stop before delete refused", error=str(exc))


#: The step of each state that has one; a timer that fires in another state is cleared.
STEPS: dict[JobState, Step] = {
    JobState.ADMITTED: start_or_expire,
    JobState.RUNNING: poll,
    JobState.STOPPING: observe,
    JobState.FINISHED: publish,
    JobState.PUBLISHED: delete_after_retention,
    JobState.PREPARING: run_items,
    JobState.DRAINING: drain_then_update,
    JobState.UPDATING: await_active,
}


def _ended(svc: Services, job: Job, body: dict[str, Any], remote_status: str) -> StepResult:
    """Finish a job whose remote job ended in ``remote_status`` (evalq's words), from what
    the service said of it (a Get's body, or the listing's summary)."""
    # Stopped by evalq: a stop it asked for (its answer may have been lost, the job then
    # still RUNNING here) at the deadline or for a cancel.
    asked = (job.state == JobState.STOPPING or job.cancel_requested_at is not None
             or svc.clock() >= job.deadline_at)  # fmt: skip
    stopped_by_us = asked and remote_status == RemoteStatus.STOPPED
    status = _stopped_status(job) if stopped_by_us else OutcomeStatus(remote_status)
    error = _remote_error(body)
    if stopped_by_us:
        error = (f"{_why_stopped(job)}: stopped" if job.cancel_requested_at is not None
                 else "stopped at its deadline")  # fmt: skip
    return finish(svc, job, status, body, error=error, remote_status=remote_status)


def _vanished(svc: Services, job: Job) -> StepResult:
    """The remote job is gone (deleted by someone else): the job ends FAILED."""
    return finish(svc, job, OutcomeStatus.FAILED, None, error="the remote job no longer exists")


def _remote_error(body: dict[str, Any]) -> str | None:
    details = body.get("errorDetails") or []
    return "; ".join(str(d) for d in details) or None
