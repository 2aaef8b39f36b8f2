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
from worker.errors import QueueRefused, RetryableError
from worker.jobs import moves
from worker.jobs.outcomes import build_outcome, build_rollout_outcome
from worker.jobs.record import Job
from worker.jobs.results import StepResult
from worker.jobs.states import Move
from worker.observability import metrics
from worker.observability.redaction import redact
from worker.services import Published, Services

log = structlog.stdlib.get_logger("evalq.steps")


def finish(
    svc: Services,
    job: Job,
    status: OutcomeStatus | EvaluatorUpdateStatus,
    body: dict[str, Any] | None,
    *,
    error: str | None,
    move: Move = Move.FINISH,
    **fields: Any,
) -> StepResult:
    """Record the final status, free the slot (``moves`` admits the next job), publish the outcome.
    ``move``: FINISH, or CANCEL for a job cancelled before it had a remote job."""
    now = svc.clock()
    fields.setdefault("remote_status", (body or {}).get("status", job.remote_status))
    moved = moves.move(
        svc,
        job,
        move,
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
    finished = svc.store.get(job.request_id)
    return publish(svc, finished) if finished is not None else StepResult.MISSING


def publish(svc: Services, job: Job) -> StepResult:
    """Publish the outcome to every queue it has not reached yet, then record it. A reply
    queue that keeps refusing it is given up on (``reply_publish_attempts``, at once when it
    refuses for good) and recorded; it never holds up the others. The main queue is tried
    again on the job's timer (its retry budget: then a dead letter, whose replay publishes
    again)."""
    now = svc.clock()
    outcome: EvaluationOutcome | EvaluatorUpdateOutcome
    if job.is_rollout:
        outcome = build_rollout_outcome(job, now=now)
        main = svc.settings.evaluator_updates_queue
    else:
        outcome = build_outcome(job, now=now)
        main = svc.settings.results_queue
    queues = list(dict.fromkeys([main, *job.reply_to]))
    done = set(job.published_to or [])
    failures = dict(job.reply_failures or {})
    pending = [q for q in queues if q not in done and not failures.get(q, {}).get("dropped")]
    published = svc.publisher.publish(outcome, pending)
    if published.failed:
        _record_failures(svc, job, main, published, done, failures)
    return _published(svc, job, outcome, queues, now)


def _record_failures(
    svc: Services,
    job: Job,
    main: str,
    published: Published,
    done: set[str],
    failures: dict[str, Any],
) -> None:
    """Keep what reached its queue, count each reply queue's failures (dropping those past
    their attempts), and raise while a queue is still to be tried again."""
    retry: list[str] = []
    for queue, exc in published.failed.items():
        if queue == main:
            if isinstance(exc, QueueRefused):
                raise exc
            retry.append(queue)
            continue
        entry = failures.get(queue, {})
        count = int(entry.get("failures", 0)) + 1
        dropped = isinstance(exc, QueueRefused) or count >= svc.settings.reply_publish_attempts
        failures[queue] = {"failures": count, "error": redact(str(exc)), "dropped": dropped}
        if dropped:
            log.warning("reply queue dropped for this outcome", queue=queue, error=str(exc))
            metrics.reply_queue_dropped(svc.redis, svc.keys, job)
        else:
            retry.append(queue)
    sent = sorted(done | set(published.sent))
    svc.store.update(job.request_id, published_to=sent, reply_failures=failures)
    if retry:
        raise RetryableError(f"outcome not yet published to {', '.join(retry)}: "
                             f"{published.failed[retry[0]]}")  # fmt: skip


def _published(
    svc: Services,
    job: Job,
    outcome: EvaluationOutcome | EvaluatorUpdateOutcome,
    queues: list[str],
    now: float,
) -> StepResult:
    # A remote job is kept for its retention, unless it is gone already (deleted at its
    # deadline by a service that cannot stop one).
    kept = job.batch_evaluation_id is not None and job.deleted_at is None
    published = moves.move(
        svc,
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
        moves.move(svc, job, Move.DELETE, clear_due=True, updated_at=now)
    delay = None if job.remote_ended_at is None else round(now - job.remote_ended_at, 4)
    log.info(
        "outcome published",
        status=outcome.status.value,
        queues=queues,
        end_to_outcome_seconds=delay,
    )
    return StepResult.PUBLISHED
