"""Intake: validate a request and register it once; bad input becomes a dead letter.

``evals.submit`` calls :func:`accept`. A request that replays a dead letter carries a
mark, and what intake does with it settles that replay (``worker.dead_letters.replay``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from api_contracts import (
    EvaluationRequest,
    ReasonCode,
    describe_validation_error,
    reason_for_validation_error,
)
from worker import task_names
from worker.dead_letters import replay
from worker.jobs.admission import admit_waiting
from worker.jobs.states import JobState
from worker.jobs.store import IntakeOutcome
from worker.observability import metrics
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
) -> IntakeResult:
    """Register ``raw`` once (or dead-letter it) and settle the replay it carries."""
    result = _register(svc, raw, task_name)
    replay.settle(
        svc.dead_letters,
        svc.store,
        replay_mark,
        outcome=result.outcome,
        request_id=result.request_id,
        new_entry_id=result.dead_letter_id,
    )
    return result


def _register(svc: Services, raw: Any, task_name: str) -> IntakeResult:
    now = svc.clock()
    try:
        request = EvaluationRequest.model_validate(raw)
    except ValidationError as exc:
        return _reject(svc, raw, exc, task_name, now)

    structlog.contextvars.bind_contextvars(request_id=request.request_id)
    settings = svc.settings
    backend = svc.backends.get(str(request.backend))
    registration = svc.store.register(
        request,
        remote_name=backend.remote_name(request) if backend is not None else None,
        now=now,
        deadline_at=now + (request.deadline_seconds or settings.default_deadline_seconds),
        # 0 is a valid retention (delete as soon as the outcome is out), not "unset".
        retention=float(
            settings.default_retention_seconds
            if request.retention_seconds is None
            else request.retention_seconds
        ),
    )
    if registration.outcome == IntakeOutcome.CONFLICT:
        letter = svc.dead_letters.record(
            reason=ReasonCode.idempotency_conflict,
            error=f"request_id {request.request_id!r} was already accepted with another payload",
            request=request.model_dump(mode="json"),
            request_id=request.request_id,
            now=now,
            task_name=task_name,
            fingerprint=request.payload_hash(),
        )
        log.warning("idempotency conflict", dead_letter_id=letter.dead_letter_id)
        return IntakeResult(
            request.request_id, registration.outcome, registration.state, letter.dead_letter_id
        )
    log.info("request accepted", outcome=registration.outcome.value, producer=request.producer)
    if registration.outcome != IntakeOutcome.DUPLICATE:
        admit_waiting(svc)
    return IntakeResult(request.request_id, registration.outcome, registration.state)


def _reject(
    svc: Services, raw: Any, exc: ValidationError, task_name: str, now: float
) -> IntakeResult:
    reason = reason_for_validation_error(exc)
    request_id = raw.get("request_id") if isinstance(raw, dict) else None
    letter = svc.dead_letters.record(
        reason=reason,
        error=describe_validation_error(exc),
        request=raw if isinstance(raw, dict | str) else repr(raw),
        request_id=request_id if isinstance(request_id, str) else None,
        now=now,
        task_name=task_name,
        also=lambda pipe: metrics.count_request(pipe, svc.keys, "rejected", raw),
    )
    log.warning("request rejected", reason=reason.value, dead_letter_id=letter.dead_letter_id)
    return IntakeResult(None, IntakeOutcome.REJECTED, dead_letter_id=letter.dead_letter_id)
