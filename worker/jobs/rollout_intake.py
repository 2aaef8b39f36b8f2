"""Intake of evaluator rollouts (``evals.evaluator.update``): validate, register once, or
dead-letter with a stable reason, exactly as ``evals.submit`` does for requests.

A ``Builtin.*`` evaluator or a bad update is refused by the contract before any call
(``invalid_request``); a rollout is registered once per request_id (the same payload
again: nothing new; another payload: ``idempotency_conflict``). Its first step runs at
once (``worker.jobs.rollouts``).
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError

from api_contracts import (
    Backend,
    EvaluatorUpdateRequest,
    ReasonCode,
    describe_validation_error,
    reason_for_validation_error,
)
from worker import task_names
from worker.dead_letters import replay
from worker.errors import PermanentError
from worker.jobs import moves
from worker.jobs.intake import IntakeResult, dead_letter_raw, dead_letter_valid, refused_by
from worker.jobs.rollouts import ROLLOUT_DEADLINE_SECONDS
from worker.jobs.store import IntakeOutcome
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.intake")


def accept_rollout(
    svc: Services,
    raw: Any,
    *,
    replay_mark: replay.ReplayMark | None = None,
    broker_user: str | None = None,
) -> IntakeResult:
    """Register the rollout ``raw`` once (or dead-letter it) and settle its replay."""
    result = _register(svc, raw, broker_user)
    replay.settle(
        svc.dead_letters,
        svc.store,
        replay_mark,
        outcome=result.outcome,
        request_id=result.request_id,
        new_entry_id=result.dead_letter_id,
    )
    return result


def _register(svc: Services, raw: Any, broker_user: str | None) -> IntakeResult:
    now = svc.clock()
    task = task_names.EVALUATOR_UPDATE
    try:
        request = EvaluatorUpdateRequest.model_validate(raw)
    except ValidationError as exc:
        return dead_letter_raw(svc, raw, reason_for_validation_error(exc),
                               describe_validation_error(exc), task, now)  # fmt: skip
    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    rejected = IntakeResult(request.request_id, IntakeOutcome.REJECTED)
    refusal = svc.producers.check(request.producer, reply_to=request.reply_to,
                                  broker_user=broker_user, evaluator_update=True)  # fmt: skip
    if refusal is not None:
        return dead_letter_valid(svc, request, rejected, refusal.reason, refusal.error, task,
                                 now, None)  # fmt: skip
    try:
        target = agentcore_target(svc, request.target)
    except PermanentError as exc:
        return dead_letter_valid(svc, request, rejected, exc.reason, str(exc), task, now, None)
    registration = moves.register_rollout(
        svc, request, target=target, now=now, deadline_at=now + ROLLOUT_DEADLINE_SECONDS
    )
    result = IntakeResult(registration.job_id, registration.outcome, registration.state)
    refused = refused_by(registration, request, 0, target)
    if refused is not None:
        reason, error = refused
        return dead_letter_valid(svc, request, result, reason, error, task, now, target)
    if registration.outcome != IntakeOutcome.DUPLICATE:
        svc.dispatch(registration.job_id, None, 0.0)  # its first step (its timer is due now)
    log.info(
        "rollout accepted",
        outcome=registration.outcome.value,
        evaluator_id=request.evaluator_id,
        drain=request.drain,
        target=target,
    )
    return result


def agentcore_target(svc: Services, name: str | None) -> str:
    """The AgentCore target a rollout names, or the default one."""
    target = svc.targets.named_or_default(name)
    if target.config.backend is not Backend.AGENTCORE:
        raise PermanentError(
            f"target {target.name!r} runs {target.config.backend.value}: evaluators are "
            "AgentCore's",
            ReasonCode.no_target,
        )
    return target.name
