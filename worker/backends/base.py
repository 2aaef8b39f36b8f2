"""What evalq needs from a remote evaluation service, in one vocabulary for every backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from api_contracts import EvaluationRequest


class RemoteStatus(StrEnum):
    """A remote job's status in evalq's words; each backend maps its service's statuses
    onto them (AgentCore: ``agentcore/status.py``; Aymara, Agno: their ``runs.py``)."""

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


#: Where a remote run lives besides its id, for the calls that name it: Aymara's
#: ``workspace_uuid``, Agno's ``db_id`` and ``table``. AgentCore needs none.
Scope = dict[str, str]


@dataclass(frozen=True)
class Capabilities:
    """What a service can do, which decides how evalq drives it."""

    #: The service takes an idempotency key on create (AgentCore's ``clientToken``): a
    #: retried start asks for the same run. Without one, evalq records an intent before
    #: each create and looks the run up by its name before any retry (docs/backends.md).
    client_token: bool = True
    #: A running remote job can be stopped; without, a job past its deadline is deleted.
    can_stop: bool = True
    #: Creating runs the whole evaluation before the service answers (Agno): the call runs
    #: on its own queue, bounded by the job's deadline, and the run is finished at once.
    synchronous: bool = False
    #: Finished runs are deleted in bulk by the janitor (one call per scope per sweep)
    #: rather than one by one on each job's timer.
    bulk_delete: bool = False
    #: One listing per tick can watch every running job (``worker.jobs.watch``).
    watch_by_list: bool = True


@dataclass(frozen=True)
class SessionCounts:
    """How far a remote job got, in sessions, as its backend reads its service's answer."""

    completed: int
    total: int
    #: Sessions that failed or were left out.
    failed: int = 0


@dataclass(frozen=True)
class RemoteJob:
    id: str
    arn: str | None
    name: str | None
    status: str
    #: The service's response body, JSON-safe (timestamps as ISO strings).
    body: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    scope: Scope = field(default_factory=dict)
    #: Its progress, when the service reports one (AgentCore's ``evaluationResults``).
    counts: SessionCounts | None = None


@dataclass(frozen=True)
class StartSpec:
    """What a backend is told to start (or find) one job's remote run: no more of the job
    (``worker.jobs.remote.start_spec`` makes it from the job record)."""

    request_id: str
    #: The request as the producer sent it (``EvaluationRequest`` as JSON).
    request: dict[str, Any]
    #: The name recorded for the run at registration (``Backend.remote_name``), if any.
    remote_name: str | None = None
    #: Per-item results of the request's scenario items, frozen when the job entered the
    #: backlog (the sessions a start names), if it ran scenarios.
    scenarios: list[dict[str, Any]] | None = None


class Backend(Protocol):
    name: str
    capabilities: Capabilities
    #: The longest a call waits for its answer (seconds): after a create whose answer
    #: never came, evalq looks for the run only once this has passed.
    call_timeout: float

    def remote_name(self, request: EvaluationRequest, job_id: str) -> str:
        """The name the remote job of ``request``, registered as ``job_id``, will carry
        (indexed for reconciliation)."""
        ...

    def start(self, spec: StartSpec, *, timeout: float | None = None) -> RemoteJob:
        """Start the job's remote evaluation; idempotent for the same job when the service
        takes a client token. ``timeout`` bounds a synchronous run's call."""
        ...

    def find(self, spec: StartSpec) -> RemoteJob | None:
        """The remote job a start of ``spec`` created, looked up by its name, or None."""
        ...

    def get(self, remote_id: str, scope: Scope | None = None) -> RemoteJob: ...

    def stop(self, remote_id: str, scope: Scope | None = None) -> RemoteJob: ...

    def delete(self, remote_id: str, scope: Scope | None = None) -> None:
        """Delete a terminal remote job; a job that is already gone counts as deleted."""
        ...

    def delete_many(self, jobs: list[tuple[str, Scope]]) -> None:
        """Delete several remote jobs (in bulk where the service can)."""
        ...

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """One page of the account's remote jobs and the next page's token (None after
        the last); callers rate-limit each page."""
        ...
