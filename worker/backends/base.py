"""What evalq needs from a remote evaluation service, in one vocabulary for every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from api_contracts import EvaluationRequest
from worker.jobs.record import Job


class RemoteStatus(StrEnum):
    """A remote job's status, as AgentCore's BatchEvaluationStatus spells it; every
    backend reports its statuses in these words."""

    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    DELETING = "DELETING"


#: Remote statuses in which a stop is accepted (elsewhere AgentCore answers 409).
STOPPABLE_STATUSES = frozenset({RemoteStatus.PENDING, RemoteStatus.IN_PROGRESS})
TERMINAL_STATUSES = frozenset(
    {
        RemoteStatus.COMPLETED,
        RemoteStatus.COMPLETED_WITH_ERRORS,
        RemoteStatus.FAILED,
        RemoteStatus.STOPPED,
    }
)


def is_terminal(status: str) -> bool:
    return status in TERMINAL_STATUSES


@dataclass(frozen=True)
class RemoteJob:
    id: str
    arn: str | None
    name: str | None
    status: str
    #: The service's response body, JSON-safe (timestamps as ISO strings).
    body: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None

    @property
    def results(self) -> dict[str, Any] | None:
        value = self.body.get("evaluationResults")
        return value if isinstance(value, dict) else None


class Backend(Protocol):
    name: str

    def remote_name(self, request: EvaluationRequest) -> str:
        """The name the request's remote job will carry (indexed for reconciliation)."""
        ...

    def start(self, job: Job) -> RemoteJob:
        """Start the job's remote evaluation; idempotent for the same job."""
        ...

    def get(self, remote_id: str) -> RemoteJob: ...

    def stop(self, remote_id: str) -> RemoteJob: ...

    def delete(self, remote_id: str) -> None:
        """Delete a terminal remote job; a job that is already gone counts as deleted."""
        ...

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """One page of the account's remote jobs and the next page's token (None after
        the last); callers rate-limit each page."""
        ...
