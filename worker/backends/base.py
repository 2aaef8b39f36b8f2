"""What evalq needs from a remote evaluation service."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from api_contracts import EvaluationRequest
from worker.jobs import Job


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

    def list_jobs(self) -> Iterator[RemoteJob]: ...

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """One page of ``list_jobs`` and the next page's token (None after the last)."""
        ...
