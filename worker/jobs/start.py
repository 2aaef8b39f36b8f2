"""Starting a job's remote evaluation exactly once.

With a client token (AgentCore), every delivery and every retry of a start asks for the
same remote job. Without one (Aymara, Agno), evalq records an *intent* before each create:
when it was sent and how long its answer may take. A later step that finds an intent
whose answer never came (a lost answer, a dropped connection, a killed worker) first
waits until that create can no longer be on its way, then looks the run up by its name
(unique, with the target's prefix): a run it finds is adopted, and only when there is
none is the run created again. A run that appears even later is adopted (or deleted) by
the janitor, which knows the name too.

A synchronous service (Agno) runs the whole eval in its create: that call is handed to
the synchronous queue (``evals.run``), bounded by the job's deadline, and the job's timer
is set past the call's end, so a worker killed mid-call leaves a job that comes back.
``evals.run`` is sent once the handing step let go of the job's lock; a run that still
finds the job busy (a redelivery racing a step) makes :func:`after_busy_run` hand it off
again at the next tick rather than at that timer.
"""

from __future__ import annotations

import structlog

from api_contracts import OutcomeStatus
from worker.backends.base import Backend, RemoteJob
from worker.errors import Throttled
from worker.jobs import moves
from worker.jobs.finish import finish
from worker.jobs.record import Job
from worker.jobs.remote import backend_of, rate_limited
from worker.jobs.results import Step, StepResult
from worker.jobs.states import JobState, Move
from worker.jobs.watch import is_watched
from worker.observability import metrics
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.start")


def start_or_expire(svc: Services, job: Job) -> StepResult:
    """The step of an admitted job."""
    now = svc.clock()
    if now >= job.deadline_at:
        return _expire_unstarted(svc, job)
    backend = backend_of(svc, job)
    if job.create_intent_at is not None:
        return _settle(svc, job, backend, inline=not backend.capabilities.synchronous)
    if job.cancel_requested_at is not None:
        return cancel_unstarted(svc, job)
    if backend.capabilities.synchronous:
        return _hand_off(svc, job)
    return start(svc, job)


def run_synchronously(svc: Services, job: Job) -> StepResult:
    """The step ``evals.run`` takes (on the synchronous queue): the whole run, now."""
    if job.state != JobState.ADMITTED:
        return StepResult.RACED
    now = svc.clock()
    if now >= job.deadline_at:
        return _expire_unstarted(svc, job)
    if job.create_intent_at is not None:
        return _settle(svc, job, backend_of(svc, job), inline=True)
    if job.cancel_requested_at is not None:
        return cancel_unstarted(svc, job)
    return start(svc, job, timeout=synchronous_timeout(svc, job))


def after_busy_run(svc: Services, request_id: str) -> bool:
    """``evals.run`` found its job's lock taken. If no create was sent (the job is
    admitted and records no intent), the lock's holder is the step that handed the run
    off (or one about to): nobody would send the create before the hand-off's timer, the
    whole call's timeout later (15 min by default), with the job holding a slot. Its
    timer comes due now instead, and the next tick's step hands the run off again.
    Returns True if it did; else the holder runs the create or moved the job on."""
    job = svc.store.get(request_id)
    if job is None or job.state != JobState.ADMITTED or job.create_intent_at is not None:
        return False
    svc.store.schedule(request_id, svc.clock())
    log.info("synchronous run found its job busy before any create; handed off again")
    return True


def synchronous_step(state: JobState) -> Step | None:
    """The step ``evals.run`` takes in ``state`` (none but for an admitted job)."""
    return run_synchronously if state == JobState.ADMITTED else None


def synchronous_timeout(svc: Services, job: Job) -> float:
    """How long a synchronous run may take: its deadline bounds it."""
    return max(1.0, min(svc.settings.synchronous_run_timeout, job.deadline_at - svc.clock()))


def start(svc: Services, job: Job, *, timeout: float | None = None) -> StepResult:
    """Create the job's remote evaluation (an intent first, for a service without a
    client token) and record it."""
    backend = backend_of(svc, job)
    if rate_limited(svc, job, "start"):
        return StepResult.RATE_LIMITED
    if not backend.capabilities.client_token:
        _record_intent(svc, job, timeout or backend.call_timeout)
    try:
        remote = backend.start(job, timeout=timeout)
    except Throttled:
        if not backend.capabilities.client_token:
            # Refused with an answer (429): no run was made, so none is looked up before
            # the next create (each throttled create waited out a lookup and made one).
            svc.store.update(job.request_id, create_intent_at=None, create_timeout=None)
        raise
    return _started(svc, job, backend, remote)


def _hand_off(svc: Services, job: Job) -> StepResult:
    """Time the job past the synchronous call's end; ``advance`` sends ``evals.run`` once
    it has let go of the job's lock (sent under it, a run picked up at once found the job
    busy)."""
    timeout = synchronous_timeout(svc, job)
    svc.store.schedule(job.request_id, svc.clock() + timeout + svc.settings.create_settle_margin)
    return StepResult.HANDED_OFF


def _record_intent(svc: Services, job: Job, timeout: float) -> None:
    now = svc.clock()
    svc.store.update(
        job.request_id, create_intent_at=now, create_timeout=timeout, creates=job.creates + 1
    )
    # A worker killed mid-call leaves the timer to bring the job back once the create
    # can no longer be on its way.
    svc.store.schedule(job.request_id, now + timeout + svc.settings.create_settle_margin)


def _settle(svc: Services, job: Job, backend: Backend, *, inline: bool) -> StepResult:
    """An earlier create's answer never came: adopt its run if it made one, else create
    again."""
    assert job.create_intent_at is not None
    now = svc.clock()
    settled_at = job.create_intent_at + (job.create_timeout or 0.0)
    settled_at += svc.settings.create_settle_margin
    if now < settled_at:
        svc.store.schedule(job.request_id, settled_at)
        return StepResult.WAITING
    if rate_limited(svc, job, "list"):
        return StepResult.RATE_LIMITED
    found = backend.find(job)
    if found is not None:
        log.info("found the run of a create whose answer never came", run=found.id)
        return _started(svc, job, backend, found)
    svc.store.update(job.request_id, create_intent_at=None, create_timeout=None)
    job.create_intent_at = job.create_timeout = None
    if job.cancel_requested_at is not None:
        return cancel_unstarted(svc, job)  # cancelled meanwhile: nothing to create again
    log.info("the earlier create made no run; creating again", creates=job.creates)
    if not inline:
        return _hand_off(svc, job)
    timeout = synchronous_timeout(svc, job) if backend.capabilities.synchronous else None
    return start(svc, job, timeout=timeout)


def _started(svc: Services, job: Job, backend: Backend, remote: RemoteJob) -> StepResult:
    now = svc.clock()
    synchronous = backend.capabilities.synchronous
    first_poll = now if synchronous else now + svc.poll_policy.backoff(0, svc.rng)
    moved = moves.move(
        svc,
        job,
        Move.START,
        due_at=min(first_poll, job.deadline_at),
        started_at=now,
        updated_at=now,
        batch_evaluation_id=remote.id,
        batch_evaluation_arn=remote.arn,
        batch_evaluation_name=remote.name,
        remote_status=remote.status,
        remote_scope=remote.scope or None,
        attempts=0,
        first_error_at=None,
        create_intent_at=None,
        create_timeout=None,
    )
    if not moved:
        return StepResult.RACED
    metrics.job_started(svc.redis, svc.keys, job, now)
    log.info("remote job started", batch_evaluation_id=remote.id, status=remote.status)
    target = svc.targets[job.target]
    if synchronous:
        svc.dispatch(job.request_id, None, 0.0)  # read the stored run and finish now
    elif svc.settings.watch_by_list and backend.capabilities.watch_by_list:
        # The target's listing looks at it when its first poll would have (sooner if
        # another job is due sooner); an idle target's watch starts now, not next tick.
        svc.store.watch_at(target.name, first_poll, sooner_only=True)
        if not is_watched(svc, target):
            svc.dispatch_watch(target.name)
    return StepResult.STARTED


def cancel_unstarted(svc: Services, job: Job) -> StepResult:
    """A cancelled job that has no remote job (and no create on its way) never gets one."""
    log.info("cancelled before it started")
    return finish(svc, job, OutcomeStatus.CANCELLED, None, move=Move.CANCEL,
                  error=f"{job.cancel_reason or 'cancelled'}: it had not started; no "
                  "remote job was created")  # fmt: skip


def _expire_unstarted(svc: Services, job: Job) -> StepResult:
    # An admitted job whose deadline passed before it could start is never started.
    return finish(svc, job, OutcomeStatus.EXPIRED, None,
                  error="deadline passed before the job started")  # fmt: skip
