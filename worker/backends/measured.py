"""A backend whose remote calls are counted and timed, whatever service it speaks to.

The composition root wraps every target's backend in one, so each of the ``Backend``
protocol's remote operations (start, find, get, stop, delete, delete_many, list_page)
lands in ``evalq_remote_calls_total`` and ``evalq_remote_call_duration_seconds`` with
its result class, without the backends knowing about metrics.
"""

from __future__ import annotations

from typing import Any

from api_contracts import EvaluationRequest
from worker.backends.base import Backend, Capabilities, RemoteJob, Scope, StartSpec
from worker.observability.metrics import RemoteCalls


class MeasuredBackend:
    def __init__(self, backend: Backend, calls: RemoteCalls) -> None:
        self.backend = backend
        self.calls = calls
        self.name = backend.name
        self.capabilities: Capabilities = backend.capabilities
        self.call_timeout = backend.call_timeout

    def __getattr__(self, name: str) -> Any:
        # Anything else (a backend's own client, which tests and tools reach for) is the
        # wrapped backend's.
        return getattr(self.backend, name)

    def remote_name(self, request: EvaluationRequest, job_id: str) -> str:
        return self.backend.remote_name(request, job_id)  # no remote call

    def start(self, spec: StartSpec, *, timeout: float | None = None) -> RemoteJob:
        with self.calls.measure("start"):
            return self.backend.start(spec, timeout=timeout)

    def find(self, spec: StartSpec) -> RemoteJob | None:
        with self.calls.measure("find"):
            return self.backend.find(spec)

    def get(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        with self.calls.measure("get"):
            return self.backend.get(remote_id, scope)

    def stop(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        with self.calls.measure("stop"):
            return self.backend.stop(remote_id, scope)

    def delete(self, remote_id: str, scope: Scope | None = None) -> None:
        with self.calls.measure("delete"):
            self.backend.delete(remote_id, scope)

    def delete_many(self, jobs: list[tuple[str, Scope]]) -> None:
        with self.calls.measure("delete_many"):
            self.backend.delete_many(jobs)

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        with self.calls.measure("list"):
            return self.backend.list_page(token)
