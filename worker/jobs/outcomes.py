"""Building the ``EvaluationOutcome`` message for a finished job."""

from __future__ import annotations

from datetime import UTC, datetime

from api_contracts import EvaluationOutcome, OutcomeStatus, make_event_id
from worker.jobs.record import Job


def build_outcome(job: Job, *, now: float) -> EvaluationOutcome:
    status = OutcomeStatus(job.outcome_status or "FAILED")
    return EvaluationOutcome(
        event_id=make_event_id(job.request_id, status.value),
        request_id=job.request_id,
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
    )


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)
