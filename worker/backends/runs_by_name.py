"""What the services without an idempotency key share (Aymara, Agno): a client, the
target's name prefix, and runs named and found by evalq's deterministic name."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from api_contracts import EvaluationRequest
from worker.backends.base import RemoteJob, Scope, StartSpec
from worker.backends.naming import run_name

Client = TypeVar("Client")


class RunsByName(Generic[Client]):
    #: The contract's ``evaluation`` block of this backend.
    kind: type[BaseModel]

    def __init__(self, client: Client, name_prefix: str, call_timeout: float = 30.0) -> None:
        self.client = client
        self.name_prefix = name_prefix
        self.call_timeout = call_timeout

    def remote_name(self, request: EvaluationRequest, job_id: str) -> str:
        given = getattr(request.evaluation_of(self.kind), "name", None)  # type: ignore[type-var]
        return run_name(self.name_prefix, job_id, given)

    def delete(self, remote_id: str, scope: Scope | None = None) -> None:
        raise NotImplementedError

    def delete_many(self, jobs: list[tuple[str, Scope]]) -> None:
        for remote_id, scope in jobs:
            self.delete(remote_id, scope)

    def _evaluation(self, spec: StartSpec) -> Any:
        """The job's ``evaluation`` block, as this backend's model."""
        request = EvaluationRequest.model_validate(spec.request)
        return request.evaluation_of(self.kind)  # type: ignore[type-var]

    def _name(self, spec: StartSpec) -> str:
        return spec.remote_name or run_name(self.name_prefix, spec.request_id, None)

    @staticmethod
    def _oldest(found: list[RemoteJob]) -> RemoteJob | None:
        """The run a lookup adopts: the oldest of those with the job's name (another one,
        from a create the service served twice, is the janitor's to delete)."""
        return min(found, key=lambda r: r.created_at or 0.0) if found else None
