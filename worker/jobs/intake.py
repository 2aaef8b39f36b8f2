"""Intake: validate a request and register it once; bad input becomes a dead letter.

``evals.submit`` calls :func:`accept`. A request that replays a dead letter carries a
mark, and what intake does with it settles that replay (``worker.dead_letters.replay``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import structlog
from pydantic import ValidationError

from api_contracts import (
    EvaluationRequest,
    EvaluatorUpdateRequest,
    ReasonCode,
    describe_validation_error,
    reason_for_validation_error,
)
from worker import task_names
from worker.dead_letters import replay
from worker.errors import PermanentError
from worker.jobs import moves
from worker.jobs.states import JobState
from worker.jobs.store import IntakeOutcome, Registration
from worker.observability import metrics
from worker.observability.redaction import redact
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.intake")


@dataclass(frozen=True)
class IntakeResult:
    request_id: str | None
    outcome: IntakeOutcome
    state: JobState | None = None
    dead_letter_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (the task's return value)."""
        return {k: (None if v is None else str(v)) for k, v in asdict(self).items()}


def accept(
    svc: Services,
    raw: Any,
    *,
    task_name: str = task_names.SUBMIT,
    replay_mark: replay.ReplayMark | None = None,
    broker_user: str | None = None,
) -> IntakeResult:
    """Register ``raw`` once (or dead-letter it) and settle the replay it carries.
    ``broker_user``: who sent it, as the broker vouches (RabbitMQ's ``user_id``)."""
    result = _register(svc, raw, task_name, broker_user)
    replay.settle(
        svc.dead_letters,
        svc.store,
        replay_mark,
        outcome=result.outcome,
        request_id=result.request_id,
        new_entry_id=result.dead_letter_id,
    )
    return result


def _register(svc: Services, raw: Any, task_name: str, broker_user: str | None) -> IntakeResult:
    now = svc.clock()
    try:
        request = EvaluationRequest.model_validate(raw)
    except ValidationError as exc:
        return _reject(svc, raw, exc, task_name, now)

    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    settings = svc.settings
    rejected = IntakeResult(request.request_id, IntakeOutcome.REJECTED)
    refusal = svc.producers.check(request.producer, priority=request.priority,
                                  reply_to=request.reply_to, broker_user=broker_user)  # fmt: skip
    if refusal is not None:
        return dead_letter_valid(svc, request, rejected, refusal.reason, refusal.error, task_name,
                            now, None)  # fmt: skip
    try:
        target = svc.targets.route(request)
    except PermanentError as exc:
        return dead_letter_valid(svc, request, rejected, exc.reason, str(exc), task_name, now, None)
    policy = svc.producers.policy(request.producer)
    registration = moves.register(
        svc,
        request,
        target=target.name,
        quota=target.quota,
        remote_name=lambda job_id: target.backend.remote_name(request, job_id),
        backlog_cap=policy.backlog_cap if policy is not None else None,
        now=now,
        deadline_at=now + (request.deadline_seconds or settings.default_deadline_seconds),
        # 0 is a valid retention (delete as soon as the outcome is out), not "unset".
        retention=float(
            settings.default_retention_seconds
            if request.retention_seconds is None
            else request.retention_seconds
        ),
    )
    job_id = registration.job_id
    if job_id != request.request_id:
        structlog.contextvars.bind_contextvars(request_id=job_id)
    started = registration.outcome in (IntakeOutcome.CREATED, IntakeOutcome.REQUEUED)
    if started and registration.state == JobState.PREPARING:
        svc.dispatch(job_id, None, 0.0)  # its scenario items start now
    result = IntakeResult(job_id, registration.outcome, registration.state)
    refused = refused_by(registration, request, policy.backlog_cap if policy else 0, target.name)
    if refused is not None:
        reason, error = refused
        return dead_letter_valid(svc, request, result, reason, error, task_name, now, target.name)
    # Debug only: Celery's own "succeeded" line already carries the result (request_id,
    # outcome, state) at INFO, and one more line per request was an eighth of intake.
    log.debug(
        "request accepted",
        outcome=registration.outcome.value,
        producer=request.producer,
        target=target.name,
    )
    return result


def refused_by(
    registration: Registration,
    request: EvaluationRequest | EvaluatorUpdateRequest,
    backlog_cap: int,
    target: str,
) -> tuple[ReasonCode, str] | None:
    """Why a registration took nothing (None when it took the request)."""
    if registration.outcome == IntakeOutcome.CONFLICT:
        error = f"request_id {request.request_id!r} was already accepted with another payload"
        return ReasonCode.idempotency_conflict, error
    if registration.outcome == IntakeOutcome.QUOTA:
        error = (f"producer {request.producer!r} already has {backlog_cap} requests waiting "
                 f"in target {target!r}, as many as it may")  # fmt: skip
        return ReasonCode.producer_quota, error
    return None


def dead_letter_valid(
    svc: Services,
    request: EvaluationRequest | EvaluatorUpdateRequest,
    result: IntakeResult,
    reason: ReasonCode,
    error: str,
    task_name: str,
    now: float,
    target: str | None,
) -> IntakeResult:
    """A valid request intake cannot take: a conflict or a producer over its backlog cap
    (in ``target``), a producer's policy or no target to run in (counted as rejected;
    register.lua counts conflicts and quotas). The entry names the job id."""
    rejected = result.outcome == IntakeOutcome.REJECTED
    dump = request.model_dump(mode="json")
    letter = svc.dead_letters.record(
        reason=reason,
        error=error,
        request=dump,
        request_id=result.request_id or request.request_id,
        now=now,
        task_name=task_name,
        fingerprint=request.payload_hash(),
        target=target,
        also=(lambda pipe: metrics.count_request(pipe, svc.keys, "rejected", _backend_of(dump)))
        if rejected
        else None,
    )
    log.warning("request dead-lettered", reason=reason.value, dead_letter_id=letter.dead_letter_id)
    return replace(result, dead_letter_id=letter.dead_letter_id)


def _reject(
    svc: Services, raw: Any, exc: ValidationError, task_name: str, now: float
) -> IntakeResult:
    reason = reason_for_validation_error(exc)
    return dead_letter_raw(svc, raw, reason, describe_validation_error(exc), task_name, now)


def refuse_unexpected(
    svc: Services,
    raw: Any,
    task_name: str,
    exc: Exception,
    replay_mark: replay.ReplayMark | None = None,
) -> IntakeResult:
    """Dead-letter a request whose intake raised what no check foresaw (``internal_error``),
    so it is never acknowledged with nothing done; settles the replay it carries."""
    error = redact(f"intake failed: {type(exc).__name__}: {exc}")
    result = dead_letter_raw(svc, raw, ReasonCode.internal_error, error, task_name, svc.clock())
    replay.settle(svc.dead_letters, svc.store, replay_mark, outcome=result.outcome,
                  request_id=None, new_entry_id=result.dead_letter_id)  # fmt: skip
    return result


def dead_letter_raw(
    svc: Services, raw: Any, reason: ReasonCode, error: str, task_name: str, now: float
) -> IntakeResult:
    """Dead-letter a request as it came (it did not parse, or intake failed on it)."""
    request_id = raw.get("request_id") if isinstance(raw, dict) else None
    letter = svc.dead_letters.record(
        reason=reason,
        error=error,
        request=raw if isinstance(raw, dict | str) else repr(raw),
        request_id=request_id if isinstance(request_id, str) else None,
        now=now,
        task_name=task_name,
        also=lambda pipe: metrics.count_request(pipe, svc.keys, "rejected", _backend_of(raw)),
    )
    log.warning("request rejected", reason=reason.value, dead_letter_id=letter.dead_letter_id)
    return IntakeResult(None, IntakeOutcome.REJECTED, dead_letter_id=letter.dead_letter_id)


def _backend_of(raw: Any) -> Any:
    return raw.get("backend") if isinstance(raw, dict) else None
