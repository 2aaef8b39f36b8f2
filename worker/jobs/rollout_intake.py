"""Intake of evaluator rollouts (``evals.evaluator.update``): validate, register once, or
dead-letter with a stable reason, exactly as ``evals.submit`` does for requests.

A ``Builtin.*`` evaluator or a bad update is refused by the contract before any call
(``invalid_request``); a rollout is registered once per request_id (the same payload
again: nothing new; another payload: ``idempotency_conflict``). Its first step runs at
once (``worker.jobs.rollouts``).
"""

from __future__ import annotations

from dataclasses import replace
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
from worker.jobs.intake import IntakeResult, dead_letter_raw
from worker.jobs.rollouts import ROLLOUT_DEADLINE_SECONDS
from worker.jobs.store import IntakeOutcome
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.intake")


def accept_rollout(
    svc: Services, raw: Any, *, replay_mark: replay.ReplayMark | None = None
) -> IntakeResult:
    """Register the rollout ``raw`` once (or dead-letter it) and settle its replay."""
    result = _register(svc, raw)
    replay.settle(
        svc.dead_letters,
        svc.store,
        replay_mark,
        outcome=result.outcome,
        request_id=result.request_id,
        new_entry_id=result.dead_letter_id,
    )
    return result


def _register(svc: Services, raw: Any) -> IntakeResult:
    now = svc.clock()
    try:
        request = EvaluatorUpdateRequest.model_validate(raw)
    except ValidationError as exc:
        return dead_letter_raw(svc, raw, reason_for_validation_error(exc),
                               describe_validation_error(exc), task_names.EVALUATOR_UPDATE,
                               now)  # fmt: skip
    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    dump = request.model_dump(mode="json")
    try:
        target = svc.targets.named_or_default(request.target)
        if target.config.backend is not Backend.AGENTCORE:
            raise PermanentError(
                f"target {target.name!r} runs {target.config.backend.value}: evaluators are "
                "AgentCore's",
                ReasonCode.no_target,
            )
    except PermanentError as exc:
        rejected = IntakeResult(request.request_id, IntakeOutcome.REJECTED)
        return _dead_letter(svc, rejected, exc.reason, str(exc), dump, request.request_id,
                            request.payload_hash(), now)  # fmt: skip
    registration = svc.store.register_rollout(
        request, target=target.name, now=now, deadline_at=now + ROLLOUT_DEADLINE_SECONDS
    )
    result = IntakeResult(request.request_id, registration.outcome, registration.state)
    if registration.outcome == IntakeOutcome.CONFLICT:
        error = f"request_id {request.request_id!r} was already accepted with another payload"
        return _dead_letter(svc, result, ReasonCode.idempotency_conflict, error, dump,
                            request.request_id, request.payload_hash(), now)  # fmt: skip
    if registration.outcome != IntakeOutcome.DUPLICATE:
        svc.dispatch(request.request_id, None, 0.0)  # its first step (its timer is due now)
    log.info(
        "rollout accepted",
        outcome=registration.outcome.value,
        evaluator_id=request.evaluator_id,
        drain=request.drain,
        target=target.name,
    )
    return result


def _dead_letter(
    svc: Services,
    result: IntakeResult,
    reason: ReasonCode,
    error: str,
    request: Any,
    request_id: str | None,
    fingerprint: str | None,
    now: float,
) -> IntakeResult:
    letter = svc.dead_letters.record(
        reason=reason,
        error=error,
        request=request,
        request_id=request_id,
        now=now,
        task_name=task_names.EVALUATOR_UPDATE,
        fingerprint=fingerprint,
    )
    log.warning("rollout dead-lettered", reason=reason.value, dead_letter_id=letter.dead_letter_id)
    return replace(result, dead_letter_id=letter.dead_letter_id)
