"""Cancelling a request: ``evals.cancel`` (its producer) and ``evalq jobs stop`` (ops).

A producer cancels only its own requests (found by producer and request_id, as intake
scoped them). What happens depends on where the job is:

* no remote job yet (in the backlog, running its scenario items, admitted and not
  started): it ends at once, CANCELLED, and never gets one;
* a remote job runs: its steps stop it (AgentCore's Stop; a service that cannot stop a run
  has it deleted) and it ends CANCELLED once the stop shows; a create whose answer has not
  come is looked up first;
* ended already (an outcome out, or a dead letter): nothing changes, and the result says so.

A cancel asked twice changes nothing more. The outcome's ``error`` says what was done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from api_contracts import (
    CancelRequest,
    describe_validation_error,
    reason_for_validation_error,
)
from worker import task_names
from worker.jobs.intake import dead_letter_raw
from worker.jobs.record import Job
from worker.jobs.results import StepResult
from worker.jobs.services import Services
from worker.jobs.start import cancel_unstarted
from worker.jobs.states import JobState

log = structlog.stdlib.get_logger("evalq.cancel")

#: States whose job has ended: a cancel changes nothing.
ENDED = frozenset({JobState.FINISHED, JobState.PUBLISHED, JobState.DELETED, JobState.DEAD})
#: States whose job has no remote job and no create on its way: cancelled at once.
UNSTARTED = frozenset({JobState.QUEUED, JobState.PREPARING, JobState.ADMITTED})


@dataclass(frozen=True)
class CancelResult:
    """What a cancel did: ``cancelled`` (it ended now), ``stopping`` (its remote job is
    being stopped), ``already_cancelling``, ``already_ended``, ``unknown`` (no such request
    of that producer), ``not_cancellable`` (an evaluator rollout) or ``rejected``."""

    request_id: str | None
    outcome: str
    state: str | None = None
    detail: str | None = None
    dead_letter_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cancel(
    svc: Services,
    raw: Any,
    *,
    replay_mark: object = None,
    broker_user: str | None = None,
) -> CancelResult:
    """``evals.cancel``: validate, check the producer is who it says (where the broker
    vouches), find its own job, cancel it. (``replay_mark``: a cancel is never replayed.)"""
    try:
        request = CancelRequest.model_validate(raw)
    except ValidationError as exc:
        rejected = dead_letter_raw(svc, raw, reason_for_validation_error(exc),
                                   describe_validation_error(exc), task_names.CANCEL,
                                   svc.clock())  # fmt: skip
        return CancelResult(None, "rejected", dead_letter_id=rejected.dead_letter_id)
    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    refusal = svc.producers.check(request.producer, broker_user=broker_user)
    if refusal is not None:
        refused = dead_letter_raw(svc, raw, refusal.reason, refusal.error, task_names.CANCEL,
                                  svc.clock())  # fmt: skip
        return CancelResult(request.request_id, "rejected", dead_letter_id=refused.dead_letter_id)
    job = svc.store.find(request.request_id, request.producer)
    if job is None:
        log.warning("cancel of a request this producer never sent (or long trimmed)",
                    producer=request.producer)  # fmt: skip
        return CancelResult(request.request_id, "unknown",
                            detail=f"no request {request.request_id!r} of producer "
                            f"{request.producer!r}")  # fmt: skip
    reason = "cancelled by its producer" + (f": {request.reason}" if request.reason else "")
    return cancel_job(svc, job, reason)


def cancel_job(svc: Services, job: Job, reason: str) -> CancelResult:
    """Cancel ``job`` (its producer's, or ops'), under its lock where it can end now."""
    if job.is_rollout:
        return _result(job, "not_cancellable", "an evaluator rollout cannot be cancelled")
    if job.state in ENDED:
        ended = job.outcome_status or job.state.value
        return _result(job, "already_ended", f"it already ended ({ended}): nothing to cancel")
    if job.cancel_requested_at is not None:
        # Sent again: the first delivery may have recorded the cancel and failed before
        # handing the job to its step (harmless twice: the step runs under the job's lock).
        svc.dispatch(job.request_id, None, 0.0)
        return _result(job, "already_cancelling", f"cancel asked before: {job.cancel_reason}")
    now = svc.clock()
    svc.store.update(job.request_id, cancel_requested_at=now, cancel_reason=reason)
    job.cancel_requested_at, job.cancel_reason = now, reason
    log.info("cancel asked", state=job.state.value, reason=reason)
    if job.state in UNSTARTED and job.create_intent_at is None:
        lock = svc.store.lock(job.request_id, svc.settings.lease_seconds)
        if lock.acquire():  # no step holds the job: it ends here
            try:
                current = svc.store.get(job.request_id)
                if current is not None and _ended_now(svc, current):
                    return _result(current, "cancelled",
                                   "it had not started: no remote job was created")  # fmt: skip
            finally:
                lock.release()
    svc.dispatch(job.request_id, None, 0.0)  # its step stops it (or never starts it) now
    return _result(job, "stopping", "its remote job is being stopped")


def _ended_now(svc: Services, job: Job) -> bool:
    """Cancel a job that has no remote job yet, now; False if it moved on meanwhile."""
    return job.state in UNSTARTED and cancel_unstarted(svc, job) != StepResult.RACED


def _result(job: Job, outcome: str, detail: str) -> CancelResult:
    return CancelResult(job.producer_request_id, outcome, job.state.value, detail)
