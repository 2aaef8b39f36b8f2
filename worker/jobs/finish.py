"""The end of a job: its final status recorded (the slot freed, the next job admitted),
its outcome published to ``evals.results`` and each ``reply_to`` (a rollout's to
``evals.evaluator-updates``)."""

from __future__ import annotations

from typing import Any

import structlog

from api_contracts import (
    EvaluationOutcome,
    EvaluatorUpdateOutcome,
    EvaluatorUpdateStatus,
    OutcomeStatus,
)
from worker.jobs.admission import admit_waiting
from worker.jobs.outcomes import build_outcome, build_rollout_outcome
from worker.jobs.record import Job
from worker.jobs.results import StepResult
from worker.jobs.states import Move
from worker.observability import metrics
from worker.services import Services

log = structlog.stdlib.get_logger("evalq.steps")


def finish(
    svc: Services,
    job: Job,
    status: OutcomeStatus | EvaluatorUpdateStatus,
    body: dict[str, Any] | None,
    *,
    error: str | None,
    **fields: Any,
) -> StepResult:
    """Record the final status, free the slot, admit the next job, publish the outcome."""
    now = svc.clock()
    fields.setdefault("remote_status", (body or {}).get("status", job.remote_status))
    moved = svc.store.transition(
        job,
        Move.FINISH,
        from_state=job.state,
        due_at=now,
        finished_at=now,
        remote_ended_at=job.remote_ended_at or now,
        outcome_status=status.value,
        result=body,
        error=error,
        updated_at=now,
        **fields,
    )
    if not moved:
        return StepResult.RACED
    log.info("remote job ended", status=status.value)
    admit_waiting(svc, job.target)
    finished = svc.store.get(job.request_id)
    return publish(svc, finished) if finished is not None else StepResult.MISSING


def publish(svc: Services, job: Job) -> StepResult:
    now = svc.clock()
    outcome: EvaluationOutcome | EvaluatorUpdateOutcome
    if job.is_rollout:
        outcome = build_rollout_outcome(job, now=now)
        queues = [svc.settings.evaluator_updates_queue, *job.reply_to]
    else:
        outcome = build_outcome(job, now=now)
        queues = [svc.settings.results_queue, *job.reply_to]
    svc.publisher.publish(outcome, queues)
    # A remote job is kept for its retention, unless it is gone already (deleted at its
    # deadline by a service that cannot stop one).
    kept = job.batch_evaluation_id is not None and job.deleted_at is None
    published = svc.store.transition(
        job,
        Move.PUBLISH,
        due_at=now + job.retention_seconds if kept else None,
        clear_due=not kept,
        published_at=now,
        updated_at=now,
    )
    if published:  # once per job, however often the outcome was sent
        metrics.outcome_published(svc.redis, svc.keys, job, now)
    if job.batch_evaluation_id is not None and job.deleted_at is not None:
        svc.store.transition(job, Move.DELETE, clear_due=True, updated_at=now)
    delay = None if job.remote_ended_at is None else round(now - job.remote_ended_at, 4)
    log.info(
        "outcome published",
        status=outcome.status.value,
        queues=queues,
        end_to_outcome_seconds=delay,
    )
    return StepResult.PUBLISHED
