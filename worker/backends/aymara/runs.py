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

from api_contracts import AymaraEvaluation, ReasonCode
from worker.backends.aymara.client import AymaraClient, as_json
from worker.backends.base import (
    Capabilities,
    RemoteJob,
    RemoteStatus,
    Scope,
    StartSpec,
    is_terminal,
)
from worker.backends.runs_by_name import RunsByName
from worker.errors import PermanentError
from worker.settings import Settings
from worker.targets.config import TargetConfig

#: The ``workspace_uuid`` that lists every workspace's runs ("enterprise-wide").
EVERY_WORKSPACE = "**"

STATUSES = {
    "created": RemoteStatus.PENDING,
    "processing": RemoteStatus.IN_PROGRESS,
    "finished": RemoteStatus.COMPLETED,
    "failed": RemoteStatus.FAILED,
}


class AymaraBackend(RunsByName[AymaraClient]):
    name = "aymara"
    kind = AymaraEvaluation
    capabilities = Capabilities(client_token=False, can_stop=False, watch_by_list=False)

    @classmethod
    def for_target(cls, settings: Settings, target: TargetConfig) -> AymaraBackend:
        client = AymaraClient.from_settings(settings)
        return cls(client, target.job_name_prefix, settings.aymara_read_timeout)

    def start(self, spec: StartSpec, *, timeout: float | None = None) -> RemoteJob:
        evaluation = self._evaluation(spec).model_copy(update={"name": None})
        run = self.client.create_run(evaluation, name=self._name(spec))
        return _remote(run, _scope(evaluation))

    def find(self, spec: StartSpec) -> RemoteJob | None:
        evaluation = self._evaluation(spec)
        name = self._name(spec)
        runs = self.client.list_runs(
            eval_uuid=evaluation.eval_uuid, workspace_uuid=evaluation.workspace_uuid
        )
        return self._oldest([_remote(r, _scope(evaluation)) for r in runs if r.name == name])

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

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """Every run of the account (the client reads all pages), each with its own
        workspace: a janitor's delete without it could be answered 404 and count as done
        while the run stays. ``**`` lists every workspace's runs (without it, Aymara
        lists the key's current workspace only)."""
        runs = self.client.list_runs(workspace_uuid=EVERY_WORKSPACE)
        return [_remote(run, _scope_of(run.workspace_uuid)) for run in runs], None


def _scope(evaluation: AymaraEvaluation) -> Scope:
    return _scope_of(evaluation.workspace_uuid)


def _scope_of(workspace_uuid: str | None) -> Scope:
    return {"workspace_uuid": workspace_uuid} if workspace_uuid else {}


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
