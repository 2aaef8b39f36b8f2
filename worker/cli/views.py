"""What the command line shows of a job: one flat, JSON-safe view."""

from __future__ import annotations

import time
from typing import Any

from worker.jobs.record import Job
from worker.observability.redaction import redact


def job_view(job: Job) -> dict[str, Any]:
    progress = None
    final = (job.result or {}).get("evaluationResults")
    if final and final.get("totalNumberOfSessions"):
        progress = f"{final.get('numberOfSessionsCompleted', 0)}/{final['totalNumberOfSessions']}"
    elif job.progress_last:
        p = job.progress_last
        progress = f"{p['completed'] + p['failed']}/{p['total']}"
    return {
        "request_id": job.producer_request_id,
        "job_id": job.request_id,
        "producer": job.producer,
        "target": job.target,
        "state": job.state.value,
        "remote_status": job.remote_status,
        "progress": progress,
        "batch_evaluation_id": job.batch_evaluation_id,
        "outcome_status": job.outcome_status,
        "accepted_at": iso(job.accepted_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "published_at": iso(job.published_at),
        "deadline_at": iso(job.deadline_at),
        "polls": job.polls,
        "attempts": job.attempts,
        #: Timer firings in a row that moved it nothing (evalq jobs --stalled).
        "stalls": job.stalls,
        # Redacted again here: records written before a redaction rule existed.
        "error": redact(job.error or job.last_error or "") or None,
    }


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
