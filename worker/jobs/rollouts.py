"""The steps of an evaluator rollout (docs/evaluators.md): a record of kind ``rollout``
in the job store, moved by the one state table, on the same timer, lock, retries and
dead letters as every job.

* DRAINING (:func:`drain_then_update`): the first step checks the evaluator
  (GetEvaluator: unknown -> ``invalid_request`` with the service's message; locked by an
  enabled online evaluation config -> ``evaluator_locked`` naming it), and so does the
  step that is about to update (an evaluator another update is changing is waited
  for). With ``drain``,
  the evaluator is held from admission in its target from registration on (the moves
  keep ``TargetKeys.draining_evaluators``; ``admit.lua`` passes over queued jobs that
  use it and keeps them, in order): the step waits, on its timer, until no job holding
  a slot of the target uses it. Then it calls UpdateEvaluator (clientToken from the
  request_id: a repeated call is the same update) and moves to UPDATING.
* UPDATING (:func:`await_active`): GetEvaluator on the timer until ACTIVE (``UPDATED``)
  or UPDATE_FAILED; either finishes the rollout, which ends the drain (the held jobs go
  back to the front of their backlogs at the next admission, right after) and publishes
  the ``EvaluatorUpdateOutcome`` to ``evals.evaluator-updates`` and each ``reply_to``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from api_contracts import EvaluatorUpdateRequest, EvaluatorUpdateStatus
from api_contracts.request import MAX_DEADLINE_SECONDS
from worker.errors import BackPressure, PermanentError
from worker.jobs import moves
from worker.jobs.finish import finish
from worker.jobs.record import Job
from worker.jobs.remote import rate_limited, remote_calls
from worker.jobs.results import Step, StepResult
from worker.jobs.states import JobState, Move
from worker.services import Services

if TYPE_CHECKING:
    from worker.backends.agentcore.evaluators import EvaluatorClient

log = structlog.stdlib.get_logger("evalq.rollouts")

#: GetEvaluator's statuses (botocore's ``EvaluatorStatus``, every one of them sorted
#: here; a drift test reads the model) by what they mean for a rollout. An evaluator
#: being created or updated may still become ACTIVE: waited for (before the update, it
#: would be refused for now).
BUSY_STATUSES = frozenset({"CREATING", "UPDATING"})
#: An evaluator whose creation failed, or that is being deleted, never becomes ACTIVE
#: again: the rollout ends UPDATE_FAILED instead of waiting for its deadline.
DEAD_END_STATUSES = frozenset({"CREATE_FAILED", "DELETING"})

#: A rollout gives up this long after it was accepted: past the longest deadline any job
#: draining it can have (30 days), plus a day for its stop and the update itself.
ROLLOUT_DEADLINE_SECONDS = MAX_DEADLINE_SECONDS + 24 * 3600


def _waits_on_quota(step: Step) -> Step:
    """A rollout's step whose call the account's quota refused (402) waits on the
    rollout's own timer: requeuing (``advance``'s answer to back-pressure) means nothing
    to a rollout, which holds no slot and sits in no backlog."""

    def guarded(svc: Services, job: Job) -> StepResult:
        try:
            return step(svc, job)
        except BackPressure as exc:
            return _quota_full(svc, job, exc)

    guarded.__doc__ = step.__doc__
    return guarded


def _quota_full(svc: Services, job: Job, exc: BackPressure) -> StepResult:
    """Wait with a backoff (``quota_backoff`` doubling, at most ``poll_max``), counted in
    ``quota_waits``; past ``rollout_quota_max_waits`` the rollout ends UPDATE_FAILED."""
    settings = svc.settings
    waits = job.quota_waits + 1
    if waits > settings.rollout_quota_max_waits:
        error = (f"the account's quota stayed full: refused {waits} times, "
                 f"the last with {exc}; the update was not made")  # fmt: skip
        log.error("rollout gives up: the account's quota stayed full", refusals=waits,
                  error=str(exc))  # fmt: skip
        return finish(svc, job, EvaluatorUpdateStatus.UPDATE_FAILED, None, error=error)
    now = svc.clock()
    delay = min(settings.poll_max, settings.quota_backoff * 2.0 ** (waits - 1))
    svc.store.update(job.request_id, quota_waits=waits, last_error=str(exc), updated_at=now)
    svc.store.schedule(job.request_id, now + delay)
    log.warning("the account's quota is full; the rollout waits", waits=waits,
                delay=delay, error=str(exc))  # fmt: skip
    return StepResult.QUOTA_FULL


def _dead_end(svc: Services, job: Job, status: str, body: dict[str, Any] | None) -> StepResult:
    """The evaluator can never become ACTIVE again: the rollout ends UPDATE_FAILED."""
    called = "after" if job.update_called_at is not None else "before"
    error = (f"evaluator {job.evaluator_id} is {status}: it can never become ACTIVE "
             f"(seen {called} UpdateEvaluator)")  # fmt: skip
    log.warning("rollout ended: the evaluator can never become ACTIVE", status=status)
    return finish(svc, job, EvaluatorUpdateStatus.UPDATE_FAILED, body, error=error)


@_waits_on_quota
def drain_then_update(svc: Services, job: Job) -> StepResult:
    """The step of a DRAINING rollout."""
    now = svc.clock()
    if now >= job.deadline_at:
        return finish(svc, job, EvaluatorUpdateStatus.UPDATE_FAILED, None,
                      error="the drain did not end by the rollout's deadline; "
                      "UpdateEvaluator was not called")  # fmt: skip
    request = EvaluatorUpdateRequest.model_validate(job.request)
    client = evaluators_of(svc, job)
    users = jobs_using(svc, job.target, request.evaluator_id) if request.drain else []
    if job.remote_status is None or not users:
        # Unknown or locked fails before any wait; just before the update, an evaluator
        # another update is changing is waited for (no retry spent).
        if rate_limited(svc, job, "get"):
            return StepResult.RATE_LIMITED
        with remote_calls(svc, svc.targets[job.target]).measure("get_evaluator"):
            body = client.check_updatable(request.evaluator_id)
        status = body.get("status")
        svc.store.update(job.request_id, remote_status=status, updated_at=now)
        if status in DEAD_END_STATUSES:
            return _dead_end(svc, job, str(status), body)
        if not users and status in BUSY_STATUSES:
            svc.store.update(job.request_id, polls=job.polls + 1)
            svc.store.schedule(job.request_id, now + _backoff(svc, job.polls))
            return StepResult.WAITING
    if users:
        svc.store.schedule(job.request_id, now + svc.settings.tick_interval)
        return StepResult.DRAINING
    with remote_calls(svc, svc.targets[job.target]).measure("update_evaluator"):
        answer = client.update(request.evaluator_id, request.update.to_boto3_kwargs(),
                               request.request_id)  # fmt: skip
    moved = moves.move(
        svc,
        job,
        Move.UPDATE,
        from_state=JobState.DRAINING,
        due_at=now + svc.settings.poll_initial,
        update_called_at=now,
        update_answered_updated_at=answer.get("updatedAt"),
        remote_status=answer.get("status"),
        polls=0,
        attempts=0,
        first_error_at=None,
        updated_at=now,
    )
    if moved:
        log.info("UpdateEvaluator called", evaluator_id=request.evaluator_id,
                 status=answer.get("status"), drained=request.drain)  # fmt: skip
    return StepResult.UPDATE_CALLED if moved else StepResult.RACED


@_waits_on_quota
def await_active(svc: Services, job: Job) -> StepResult:
    """The step of an UPDATING rollout: GetEvaluator until the update settles."""
    if rate_limited(svc, job, "get"):
        return StepResult.RATE_LIMITED
    assert job.evaluator_id is not None
    with remote_calls(svc, svc.targets[job.target]).measure("get_evaluator"):
        body = evaluators_of(svc, job).get(job.evaluator_id)
    now = svc.clock()
    status = body.get("status")
    if status == "ACTIVE" and _read_before_the_update(body, job):
        # An eventually consistent read of the old judge: releasing the held jobs now
        # would run them on it while the update lands.
        status = "UPDATING"
    if status == "ACTIVE":
        return finish(svc, job, EvaluatorUpdateStatus.UPDATED, body, error=None, active_at=now)
    if status == "UPDATE_FAILED":
        return finish(svc, job, EvaluatorUpdateStatus.UPDATE_FAILED, body,
                      error=_failure(body))  # fmt: skip
    if status in DEAD_END_STATUSES:
        return _dead_end(svc, job, str(status), body)
    if now >= job.deadline_at:
        return finish(svc, job, EvaluatorUpdateStatus.UPDATE_FAILED, body,
                      error=f"still {status} at the rollout's deadline")  # fmt: skip
    moves.move(svc,
        job, Move.POLL, from_state=JobState.UPDATING, due_at=now + _backoff(svc, job.polls),
        polls=job.polls + 1, remote_status=status, updated_at=now,
    )  # fmt: skip
    return StepResult.POLLED


def _read_before_the_update(body: dict[str, Any], job: Job) -> bool:
    """GetEvaluator's ``updatedAt`` is older than UpdateEvaluator's answer: the body is
    the evaluator as it was before the update (both times are the service's)."""
    answered, read = job.update_answered_updated_at, body.get("updatedAt")
    if not answered or not isinstance(read, str):
        return False
    try:
        return datetime.fromisoformat(read) < datetime.fromisoformat(answered)
    except ValueError:
        return False  # a shape evalq does not know: trust the status


def _backoff(svc: Services, polls: int) -> float:
    settings = svc.settings
    delay: float = settings.poll_initial * 2.0**polls
    return max(settings.poll_min, min(settings.poll_max, delay))


def jobs_using(svc: Services, target: str, evaluator_id: str) -> list[str]:
    """The target's slot holders (admitted, running, stopping) whose batch uses the
    evaluator. Once a drain holds the evaluator from admission this only shrinks."""
    return [
        request_id
        for request_id, (used,) in svc.store.slot_holders(target, ("evaluators",))
        if evaluator_id in (used or "").split(",")
    ]


def evaluators_of(svc: Services, job: Job) -> EvaluatorClient:
    """The control-plane client of the rollout's target."""
    target = svc.targets[job.target]
    client: EvaluatorClient | None = getattr(target.backend, "evaluators", None)
    if client is None:
        raise PermanentError(f"target {target.name!r} runs no AgentCore evaluators")
    return client


def _failure(body: dict[str, Any]) -> str:
    # GetEvaluator has no failure reason member today; report one if the service adds it.
    reason = next(
        (body[k] for k in ("failureReason", "statusReason", "statusReasons") if body.get(k)),
        None,
    )
    said = f": {reason}" if reason else " (GetEvaluator gives no reason)"
    return f"the update of {body.get('evaluatorId')} ended UPDATE_FAILED{said}"
