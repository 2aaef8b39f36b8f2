"""Agno AgentOS eval runs as evalq's remote jobs (the ``Backend`` protocol).

``POST /eval-runs`` runs the eval before it answers and stores the run, so a start is the
whole run (``Capabilities.synchronous``): evalq makes that call on its own queue, bounded
by the job's deadline, and finishes the job at once. AgentOS takes no idempotency key and
cannot stop a run: as for Aymara, evalq records an intent before each create and looks a
run up by its name after a lost answer. Finished runs are deleted in bulk, one call per
database and table (``delete_many``). A run that exists happened: COMPLETED, whatever
the eval scored (its ``eval_data`` says).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api_contracts import AgnoEvaluation, ReasonCode
from worker.backends.agno.client import AgnoClient, RunRef
from worker.backends.base import Capabilities, RemoteJob, RemoteStatus, Scope, StartSpec
from worker.backends.runs_by_name import RunsByName
from worker.errors import PermanentError
from worker.settings import Settings
from worker.targets.config import TargetConfig


class AgnoBackend(RunsByName[AgnoClient]):
    name = "agno"
    kind = AgnoEvaluation
    capabilities = Capabilities(
        client_token=False, can_stop=False, synchronous=True, bulk_delete=True,
        watch_by_list=False,
    )  # fmt: skip

    #: What the janitor lists: AgentOS's default database first, then the configured ones.
    listed: tuple[Scope, ...] = ({},)

    @classmethod
    def for_target(cls, settings: Settings, target: TargetConfig) -> AgnoBackend:
        client = AgnoClient.from_settings(settings)
        backend = cls(client, target.job_name_prefix, settings.agno_read_timeout)
        backend.listed = ({}, *(_listed(entry) for entry in settings.agno_janitor_tables))
        return backend

    def start(self, spec: StartSpec, *, timeout: float | None = None) -> RemoteJob:
        if timeout is None:
            raise ValueError("an Agno run needs a timeout (the job's deadline bounds it)")
        evaluation = self._evaluation(spec).model_copy(update={"name": None})
        run = self.client.run_eval(evaluation, timeout=timeout, name=self._name(spec))
        return _remote(run, _scope(evaluation))

    def find(self, spec: StartSpec) -> RemoteJob | None:
        evaluation = self._evaluation(spec)
        name = self._name(spec)
        runs = self.client.list_runs(db_id=evaluation.db_id, table=evaluation.table)
        return self._oldest([_remote(r, _scope(evaluation)) for r in runs if r.get("name") == name])

    def get(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        return _remote(self.client.get_run(_ref(remote_id, scope)), scope or {})

    def stop(self, remote_id: str, scope: Scope | None = None) -> RemoteJob:
        raise PermanentError("AgentOS cannot stop an eval run", ReasonCode.internal_error)

    def delete(self, remote_id: str, scope: Scope | None = None) -> None:
        self.client.delete_runs([_ref(remote_id, scope)])

    def delete_many(self, jobs: list[tuple[str, Scope]]) -> None:
        """One ``DELETE /eval-runs`` per database and table (ids it does not know are
        ignored by AgentOS)."""
        self.client.delete_runs([_ref(remote_id, scope) for remote_id, scope in jobs])

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """Every run of one listed database or table (the client reads all its pages);
        the token names the next one."""
        index = int(token or 0)
        scope = self.listed[index]
        runs = self.client.list_runs(db_id=scope.get("db_id"), table=scope.get("table"))
        following = str(index + 1) if index + 1 < len(self.listed) else None
        return [_remote(run, scope) for run in runs], following


def _listed(entry: str) -> Scope:
    """``db_id`` or ``db_id/table`` (``EVALQ_AGNO_JANITOR_TABLES``) as a scope."""
    db_id, _, table = entry.partition("/")
    return {k: v for k, v in {"db_id": db_id.strip(), "table": table.strip()}.items() if v}


def _scope(evaluation: AgnoEvaluation) -> Scope:
    where = {"db_id": evaluation.db_id, "table": evaluation.table}
    return {k: v for k, v in where.items() if v}


def _ref(remote_id: str, scope: Scope | None) -> RunRef:
    scope = scope or {}
    return RunRef(remote_id, scope.get("db_id"), scope.get("table"))


def _remote(run: dict[str, Any], scope: Scope) -> RemoteJob:
    return RemoteJob(
        id=str(run["id"]),
        arn=None,
        name=run.get("name"),
        status=RemoteStatus.COMPLETED,
        body=run,
        created_at=_created(run) or None,
        scope=scope,
    )


def _created(run: dict[str, Any]) -> float:
    value = run.get("created_at")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return 0.0
    return 0.0
