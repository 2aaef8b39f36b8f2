"""AgentCore's words for a batch evaluation, read into evalq's (``worker.backends.base``):
its BatchEvaluationStatus values and the session counts of its ``evaluationResults``."""

from __future__ import annotations

from typing import Any

from worker.backends.base import RemoteStatus, SessionCounts

#: BatchEvaluationStatus -> evalq's status (the service spells them as evalq does).
STATUSES: dict[str, RemoteStatus] = {
    "PENDING": RemoteStatus.PENDING,
    "IN_PROGRESS": RemoteStatus.IN_PROGRESS,
    "COMPLETED": RemoteStatus.COMPLETED,
    "COMPLETED_WITH_ERRORS": RemoteStatus.COMPLETED_WITH_ERRORS,
    "FAILED": RemoteStatus.FAILED,
    "STOPPING": RemoteStatus.STOPPING,
    "STOPPED": RemoteStatus.STOPPED,
    "DELETING": RemoteStatus.DELETING,
}


def status_of(value: str) -> str:
    """evalq's word for a BatchEvaluationStatus (one it does not know is kept as it is:
    never terminal, so the job is polled again)."""
    return STATUSES.get(value, value)


def counts_of(body: dict[str, Any]) -> SessionCounts | None:
    """The session counts of a GetBatchEvaluation (or listing) body's
    ``evaluationResults``; None before the service knows how many sessions there are."""
    results = body.get("evaluationResults")
    if not isinstance(results, dict) or not results.get("totalNumberOfSessions"):
        return None
    return SessionCounts(
        completed=int(results.get("numberOfSessionsCompleted") or 0),
        total=int(results["totalNumberOfSessions"]),
        failed=int(results.get("numberOfSessionsFailed") or 0)
        + int(results.get("numberOfSessionsIgnored") or 0),
    )
