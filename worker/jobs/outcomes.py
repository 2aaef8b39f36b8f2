"""Building the outcome message of a finished job: an ``EvaluationOutcome``, or a
rollout's ``EvaluatorUpdateOutcome``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api_contracts import (
    EvaluationOutcome,
    EvaluatorUpdateOutcome,
    EvaluatorUpdateStatus,
    OutcomeStatus,
    ScenarioItemOutcome,
    make_evaluator_update_event_id,
    make_event_id,
)
from worker.jobs.record import Job


def build_outcome(job: Job, *, now: float) -> EvaluationOutcome:
    status = OutcomeStatus(job.outcome_status or "FAILED")
    return EvaluationOutcome(
        event_id=make_event_id(job.request_id, status.value),
        request_id=job.producer_request_id,
        producer=job.producer,
        backend=job.backend,
        target=job.target,
        status=status,
        batch_evaluation_id=job.batch_evaluation_id,
        batch_evaluation_arn=job.batch_evaluation_arn,
        batch_evaluation_name=job.batch_evaluation_name,
        accepted_at=_utc(job.accepted_at),
        started_at=_utc(job.started_at),
        finished_at=_utc(job.finished_at),
        published_at=_utc(now),
        result=job.result,
        error=job.error,
        correlation=job.correlation,
        scenarios=None
        if job.scenarios is None
        else [ScenarioItemOutcome.model_validate(item) for item in job.scenarios],
    )


def build_rollout_outcome(job: Job, *, now: float) -> EvaluatorUpdateOutcome:
    status = EvaluatorUpdateStatus(job.outcome_status or "UPDATE_FAILED")
    return EvaluatorUpdateOutcome(
        event_id=make_evaluator_update_event_id(job.request_id, status.value),
        request_id=job.producer_request_id,
        producer=job.producer,
        evaluator_id=job.evaluator_id or "",
        status=status,
        evaluator=job.result,
        accepted_at=_utc(job.accepted_at),
        update_called_at=_utc(job.update_called_at),
        active_at=_utc(job.active_at),
        published_at=_utc(now),
        error=job.error,
        correlation=job.correlation,
    )


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def outcome_of(job: Job, *, now: float) -> dict[str, Any]:
    """The job's outcome as JSON (a request's or a rollout's)."""
    built = build_rollout_outcome(job, now=now) if job.is_rollout else build_outcome(job, now=now)
    return built.model_dump(mode="json")
