"""Aymara eval runs as evalq's remote jobs (the ``Backend`` protocol).

Aymara takes no idempotency key and cannot stop a run, so (``Capabilities``) evalq
records an intent before each create and, after a create whose answer never came, looks
the run up by its name (unique, with evalq's prefix: ``worker.backends.naming``) before
it creates again; a run past its deadline is deleted. Statuses map onto evalq's remote
words: ``created`` -> PENDING, ``processing`` -> IN_PROGRESS, ``finished`` -> COMPLETED,
``failed`` -> FAILED. A finished run's body is the run with every scored response.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aymara_ai.types.evals import EvalRunResult

from api_contracts import AymaraEvaluation, EvaluationRequest, ReasonCode
from worker.backends.aymara.client import AymaraClient, as_json
from worker.backends.base import Capabilities, RemoteJob, RemoteStatus, Scope, is_terminal
from worker.backends.naming import run_name
from worker.errors import PermanentError
from worker.jobs.record import Job
from worker.settings import Settings
from worker.targets.config import TargetConfig

STATUSES = {
    "created": RemoteStatus.PENDING,
    "processing": RemoteStatus.IN_PROGRESS,
    "finished": RemoteStatus.COMPLETED,
    "failed": RemoteStatus.FAILED,
}


class AymaraBackend:
    name = "aymara"
    capabilities = Capabilities(client_token=False, can_stop=False, watch_by_list=False)

    def __init__(self, client: AymaraClient, name_prefix: str, call_timeout: float = 30.0) -> None:
        self.client = client
        self.name_prefix = name_prefix
        self.call_timeout = call_timeout

    @classmethod
    def for_target(cls, settings: Settings, target: TargetConfig) -> AymaraBackend:
        client = AymaraClient.from_settings(settings)
        return cls(client, target.job_name_prefix, settings.aymara_read_timeout)

    def remote_name(self, request: EvaluationRequest) -> str:
        given = request.evaluation_of(AymaraEvaluation).name
        return run_name(self.name_prefix, request.request_id, given)

    def start(self, job: Job, *, timeout: float | None = None) -> RemoteJob:
        evaluation = _evaluation(job).model_copy(update={"name": None})
        run = self.client.create_run(evaluation, name=self._name(job))
        return _remote(run, _scope(evaluation))

    def find(self, job: Job) -> RemoteJob | None:
        """The oldest run of the job's eval with the job's name (a second one, from a
        create that was sent twice anyway, is the janitor's to delete)."""
        evaluation = _evaluation(job)
        name = self._name(job)
        runs = self.client.list_runs(
            eval_uuid=evaluation.eval_uuid, workspace_uuid=evaluation.workspace_uuid
        )
        mine = sorted((r for r in runs if r.name == name), key=lambda r: _epoch(r.created_at))
        return _remote(mine[0], _scope(evaluation)) if mine else None

    def get(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        workspace = (scope or {}).get("workspace_uuid")
        run = self.client.get_run(remote_id, workspace_uuid=workspace)
        remote = _remote(run, scope or {})
        if not is_terminal(remote.status):
            return remote
        responses = self.client.list_responses(remote_id, workspace_uuid=workspace)
        body = {**remote.body, "responses": [as_json(r) for r in responses]}
        return RemoteJob(remote.id, None, remote.name, remote.status, body, remote.created_at,
                         remote.scope)  # fmt: skip

    def stop(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        raise PermanentError("Aymara cannot stop an eval run", ReasonCode.internal_error)

    def delete(self, remote_id: str, scope: Scope | None = None) -> None:
        self.client.delete_run(remote_id, workspace_uuid=(scope or {}).get("workspace_uuid"))

    def delete_many(self, jobs: list[tuple[str, Scope]]) -> None:
        for remote_id, scope in jobs:
            self.delete(remote_id, scope)

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """Every run of the account (the client reads all pages)."""
        return [_remote(run, {}) for run in self.client.list_runs()], None

    def _name(self, job: Job) -> str:
        return job.remote_name or run_name(self.name_prefix, job.request_id, None)


def _evaluation(job: Job) -> AymaraEvaluation:
    return EvaluationRequest.model_validate(job.request).evaluation_of(AymaraEvaluation)


def _scope(evaluation: AymaraEvaluation) -> Scope:
    return {"workspace_uuid": evaluation.workspace_uuid} if evaluation.workspace_uuid else {}


def _remote(run: EvalRunResult, scope: Scope) -> RemoteJob:
    body: dict[str, Any] = as_json(run)
    return RemoteJob(
        id=run.eval_run_uuid,
        arn=None,
        name=run.name,
        status=STATUSES.get(run.status, RemoteStatus.IN_PROGRESS),
        body=body,
        created_at=_epoch(run.created_at) or None,
        scope=scope,
    )


def _epoch(moment: datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0
