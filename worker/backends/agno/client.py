"""A thin synchronous client of Agno AgentOS eval runs over httpx.

Why not ``agno.client.AgentOSClient``: its eval methods are async only (a Celery worker
would run an event loop per call); its ``run_eval`` sends a fixed subset of the body
(no ``name``, ``criteria``, ``scoring_strategy``, ``threshold``, ``warmup_runs``,
``additional_*``), so an ``agent_as_judge`` eval cannot be run through it at all; its
timeout is one per client, where evalq bounds each run by the job's deadline; and
importing it pulls agno and FastAPI into the worker. The wire is small (five routes,
JSON), the request shapes are evalq's own contract (``api_contracts.agno``, checked
against agno's ``EvalRunInput`` by a drift test), so httpx is all it takes.

Methods return AgentOS's JSON as it came (an eval run: ``id``, ``eval_type``,
``eval_data``, ...). Failures are raised as evalq errors (``classification``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from api_contracts import AgnoEvaluation, ReasonCode
from worker.backends.agno.classification import classify, classify_response
from worker.errors import PermanentError
from worker.observability.redaction import register_secret
from worker.settings import Settings

#: Runs per page when evalq lists (AgentOS's default is 20 and it sets no maximum).
PAGE_SIZE: Final = 100


@dataclass(frozen=True)
class RunRef:
    """Where an eval run lives: its id, and the database and table it was stored in."""

    id: str
    db_id: str | None = None
    table: str | None = None


class AgnoClient:
    def __init__(
        self,
        base_url: str,
        security_key: str | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "evalq"}
        if security_key:
            register_secret(security_key)
            headers["Authorization"] = f"Bearer {security_key}"
        self._connect_timeout = connect_timeout
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            # A connection per call: uvicorn, which serves AgentOS, closes a connection
            # after it served a 500 and when it idled 5 s; a call sent on a connection the
            # server is closing fails as a lost answer would, and for a run that is costly.
            limits=httpx.Limits(max_connections=10, max_keepalive_connections=0),
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AgnoClient:
        if not settings.agno_base_url:
            raise ValueError("EVALQ_AGNO_BASE_URL is not set: no Agno backend")
        key = settings.agno_security_key
        return cls(
            settings.agno_base_url,
            key.get_secret_value() if key is not None else None,
            connect_timeout=settings.agno_connect_timeout,
            read_timeout=settings.agno_read_timeout,
        )

    def run_eval(
        self, evaluation: AgnoEvaluation, *, timeout: float, name: str | None = None
    ) -> dict[str, Any]:
        """``POST /eval-runs``: runs the eval and answers with the stored run, which can
        take minutes. ``timeout`` bounds the wait for the answer (the caller derives it
        from the job's deadline); a run the service finished after that is still stored.
        ``name`` is used when the evaluation gives none. Not idempotent."""
        body = evaluation.body()
        if name is not None:
            body.setdefault("name", name)
        run = self._send(
            "POST",
            "/eval-runs",
            params=evaluation.query(),
            json=body,
            timeout=httpx.Timeout(timeout, connect=self._connect_timeout),
        )
        if not isinstance(run, dict):
            # AgentOS answers 200 with null for a remote or external agent it cannot evaluate.
            raise PermanentError(
                "AgentOS ran no eval (a remote or external agent or team?)",
                ReasonCode.invalid_request,
            )
        return run

    def get_run(self, run: RunRef) -> dict[str, Any]:
        """``GET /eval-runs/{id}``; ``RemoteJobNotFound`` when it does not exist."""
        found = self._send("GET", f"/eval-runs/{run.id}", params=_where(run), run_lookup=True)
        return dict(found)

    def list_runs(
        self,
        *,
        db_id: str | None = None,
        table: str | None = None,
        filters: Mapping[str, str] | None = None,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> list[dict[str, Any]]:
        """Every run, all pages. ``filters``: AgentOS's ``agent_id``, ``team_id``,
        ``workflow_id``, ``model_id``, ``type`` (agent|team|workflow) and ``eval_types``
        (comma-separated)."""
        params: dict[str, Any] = {
            **_where(RunRef("", db_id, table)),
            **(filters or {}),
            "limit": PAGE_SIZE,
            "sort_by": sort_by,
            "sort_order": sort_order,
        }
        runs: dict[str, dict[str, Any]] = {}
        page = 1
        while True:
            answer = self._send("GET", "/eval-runs", params={**params, "page": page})
            data = answer.get("data") or []
            for run in data:
                runs.setdefault(run["id"], run)  # a run seen twice (the list shifted)
            total_pages = int((answer.get("meta") or {}).get("total_pages") or 0)
            if not data or page >= total_pages:
                return list(runs.values())
            page += 1

    def rename_run(self, run: RunRef, name: str) -> dict[str, Any]:
        """``PATCH /eval-runs/{id}`` ``{"name"}``; ``RemoteJobNotFound`` when it is gone."""
        renamed = self._send(
            "PATCH", f"/eval-runs/{run.id}", params=_where(run), json={"name": name},
            run_lookup=True,
        )  # fmt: skip
        return dict(renamed)

    def delete_runs(self, runs: Iterable[RunRef]) -> int:
        """Bulk ``DELETE /eval-runs``: one call per database and table, ids AgentOS does
        not know are ignored by it. Returns how many calls were made."""
        groups: dict[tuple[str | None, str | None], list[str]] = defaultdict(list)
        for run in runs:
            ids = groups[(run.db_id, run.table)]
            if run.id not in ids:
                ids.append(run.id)
        for (db_id, table), ids in groups.items():
            self._send(
                "DELETE", "/eval-runs", params=_where(RunRef("", db_id, table)),
                json={"eval_run_ids": ids},
            )  # fmt: skip
        return len(groups)

    def close(self) -> None:
        self.http.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        json: Any = None,
        timeout: httpx.Timeout | None = None,
        run_lookup: bool = False,
    ) -> Any:
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        try:
            response = self.http.request(method, path, params=params, json=json, **extra)
        except Exception as exc:
            raise classify(exc) from exc
        if response.is_success:
            return response.json() if response.content else None
        raise classify_response(response, run_lookup=run_lookup)


def _where(run: RunRef) -> dict[str, str]:
    """The ``db_id`` / ``table`` query parameters that are set."""
    return {k: v for k, v in (("db_id", run.db_id), ("table", run.table)) if v is not None}
