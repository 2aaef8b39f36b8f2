"""The emulated Agno AgentOS eval-run API (``/eval-runs``), checked call by call against
the real AgentOS by ``tests/integration/test_agno_contract.py``.

The checks of ``POST /eval-runs`` come in AgentOS's order: the key (401), the body
(FastAPI's 422), the database (``db_id`` / ``table``: 400, 404), both agent and team
(400), an unknown agent or team (404), neither (400), the eval type's own member (400).
Then the eval "runs": the answer comes after an emulated duration that grows with
``num_iterations + warmup_runs`` (``emulator:duration=S`` in ``name`` or ``input``
overrides it), and only then is the run stored, as AgentOS stores it when its eval
ends. ``emulator:outcome=error`` makes the eval fail (500, nothing stored).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ValidationError

from ..common import Reply, Request, Service, ServiceError, markers_in
from ..common.markers import duration_marker
from .models import (
    DeleteEvalRunsRequest,
    EvalRunInput,
    EvalType,
    ListParams,
    UpdateEvalRunRequest,
    fastapi_errors,
)
from .records import StoredRun, answer, eval_data, stored_record

DEFAULT_DB_ID: Final = "agentos-db"
DEFAULT_TABLE: Final = "agno_eval_runs"
#: Statuses in the control plane's counts.
JOB_STATUSES: Final = ("running", "stored", "error", "deleted")

_COLLECTION = re.compile(r"/eval-runs/?")
_ONE = re.compile(r"/eval-runs/(?P<eval_run_id>[^/]+)/?")
_ROUTES: Final = {
    ("POST", "collection"): "RunEval",
    ("GET", "collection"): "ListEvalRuns",
    ("DELETE", "collection"): "DeleteEvalRuns",
    ("GET", "one"): "GetEvalRun",
    ("PATCH", "one"): "UpdateEvalRun",
}
#: The member each eval type needs, and AgentOS's answer when it is missing.
_NEEDS: Final = {
    EvalType.ACCURACY: ("expected_output", "expected_output is required for accuracy evaluation"),
    EvalType.AGENT_AS_JUDGE: ("criteria", "criteria is required for agent-as-judge evaluation"),
    EvalType.RELIABILITY: (
        "expected_tool_calls",
        "expected_tool_calls is required for reliability evaluations",
    ),
}

_Model = TypeVar("_Model", bound=BaseModel)


@dataclass(frozen=True)
class AgnoTiming:
    """Emulated seconds of one eval: ``base_seconds`` plus ``seconds_per_iteration`` for
    each iteration and warm-up run."""

    base_seconds: float = 1.0
    seconds_per_iteration: float = 2.0


#: Injectable error answers (``POST /_emulator/faults`` ``errors``): status -> detail.
_ERRORS: Final[dict[str, Any]] = {
    "400": "Injected: bad request",
    "401": "Invalid authentication token",
    "403": "Insufficient permissions",
    "404": "Injected: not found",
    "409": "Injected: conflict",
    "422": [{"type": "value_error", "loc": ["body"], "msg": "Injected", "input": None}],
    "429": "Too Many Requests",
    "500": "Internal server error",
    "503": "Service Unavailable",
}


def detail(status: int, message: Any) -> ServiceError:
    return ServiceError(Reply(status, {"detail": message}))


class AgnoService(Service):
    operations = tuple(dict.fromkeys(_ROUTES.values()))

    def __init__(
        self,
        *,
        security_key: str | None = None,
        agents: tuple[str, ...] = ("demo-agent",),
        teams: tuple[str, ...] = (),
        db_id: str = DEFAULT_DB_ID,
        table: str = DEFAULT_TABLE,
        timing: AgnoTiming | None = None,
        **options: Any,
    ) -> None:
        self.security_key = security_key
        self.agents = frozenset(agents)
        self.teams = frozenset(teams)
        self.db_id = db_id
        self.table = table
        self.timing = timing or AgnoTiming()
        self._runs: list[StoredRun] = []
        self._running: dict[str, dict[str, Any]] = {}
        self._errors: list[dict[str, Any]] = []
        self._table_exists = False
        super().__init__(**options)

    # --- routing and errors ------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        if _COLLECTION.fullmatch(path):
            name = _ROUTES.get((method, "collection"))
            return (name, {}) if name else ("MethodNotAllowed", {})
        matched = _ONE.fullmatch(path)
        if matched:
            name = _ROUTES.get((method, "one"))
            return (name, matched.groupdict()) if name else ("MethodNotAllowed", {})
        return None

    def authenticate(self, request: Request) -> None:
        if not self.security_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise detail(401, "Authorization header required")
        if token.strip() != self.security_key:
            raise detail(401, "Invalid authentication token")

    def unknown_route(self, request: Request) -> Reply:
        self.authenticate(request)  # a wrong key is refused before the route is
        return Reply(404, {"detail": "Not Found"})

    @property
    def error_names(self) -> tuple[str, ...]:
        """Every error answer AgentOS gives (HTTP statuses)."""
        return tuple(_ERRORS)

    def fault_reply(self, kind: str, operation: str) -> Reply:
        status = {"throttle": "429", "server_error": "500"}.get(kind, kind)
        headers = {"Retry-After": "1"} if status == "429" else {}
        return Reply(int(status), {"detail": _ERRORS[status]}, headers)

    def serve(self, operation: str, params: dict[str, str], request: Request) -> Reply:
        if operation == "MethodNotAllowed":
            return Reply(405, {"detail": "Method Not Allowed"})
        handler = getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", operation).lower())
        result: Reply = handler(params, request)
        return result

    def _database(self, request: Request) -> tuple[str, str]:
        """AgentOS's ``get_db``: the db and table a call names (400/404 as it answers)."""
        db_id, table = request.param("db_id"), request.param("table")
        if table and not db_id:
            raise detail(400, "The db_id query parameter is required when passing a table")
        if db_id and db_id != self.db_id:
            raise detail(404, f"No database found with id '{db_id}'")
        if table:
            with self.lock:
                exists = self._table_exists and table == self.table
            if not exists:
                raise detail(404, f"No database with id '{db_id}' has table '{table}'")
        return self.db_id, self.table

    # --- POST /eval-runs ---------------------------------------------------------------

    def _run_eval(self, _params: dict[str, str], request: Request) -> Reply:
        body = _body(EvalRunInput, request)
        db_id, table = self._database(request)
        if body.agent_id and body.team_id:
            raise detail(400, "Only one of agent_id or team_id must be provided")
        if body.agent_id and body.agent_id not in self.agents:
            raise detail(404, f"Agent with id '{body.agent_id}' not found")
        if not body.agent_id and body.team_id and body.team_id not in self.teams:
            raise detail(404, f"Team with id '{body.team_id}' not found")
        if not body.agent_id and not body.team_id:
            raise detail(400, "One of agent_id or team_id must be provided")
        if body.eval_type in _NEEDS:
            member, message = _NEEDS[body.eval_type]
            value = getattr(body, member)
            # AgentOS tests expected_tool_calls for None, the others for truth.
            if (value is None) if member == "expected_tool_calls" else not value:
                raise detail(400, message)
        return self._evaluate(body, db_id, table)

    def emulated_duration(self, body: EvalRunInput) -> float:
        """Emulated seconds the eval takes: ``emulator:duration=S`` in its name or input,
        else the base plus a step per iteration and warm-up run."""
        marked = duration_marker(markers_in(body.name, body.input))
        if marked is not None:
            return marked
        iterations = body.num_iterations + body.warmup_runs
        return self.timing.base_seconds + self.timing.seconds_per_iteration * iterations

    def _evaluate(self, body: EvalRunInput, db_id: str, table: str) -> Reply:
        run_id = str(uuid.uuid4())
        markers = markers_in(body.name, body.input)
        iteration_seconds = self.timing.seconds_per_iteration
        emulated = self.emulated_duration(body)
        started = self.clock()
        with self.lock:
            self._running[run_id] = {"started_at": started, "name": body.name}
            self.total_jobs += 1
            self.max_active = max(self.max_active, len(self._running))
        try:
            # The synchronous eval: the worker's call waits, the lock does not.
            self.sleep(self.real_seconds(emulated))
        finally:
            with self.lock:
                self._running.pop(run_id, None)
        data = eval_data(body, run_id, iteration_seconds)
        now = self.clock()
        with self.lock:
            if markers.get("outcome") == "error":
                self._errors.append(
                    {
                        "id": run_id,
                        "name": body.name,
                        "started_at": started,
                        "finished_at": now,
                        "eval_type": body.eval_type.value,
                    }
                )
                raise detail(500, f"Failed to run {body.eval_type.value} evaluation")
            record = stored_record(body, run_id, data, now)
            self._runs.append(StoredRun(run_id, db_id, table, record, started, now))
            self._table_exists = True
        return Reply(200, answer(body, run_id, data))

    # --- reads, rename, delete ---------------------------------------------------------------

    def _get_eval_run(self, params: dict[str, str], request: Request) -> Reply:
        self._database(request)
        with self.lock:
            return Reply(200, self._stored(params["eval_run_id"]).view())

    def _update_eval_run(self, params: dict[str, str], request: Request) -> Reply:
        body = _body(UpdateEvalRunRequest, request)
        self._database(request)
        with self.lock:
            run = self._stored(params["eval_run_id"])
            run.record["name"] = body.name
            return Reply(200, run.view())

    def _delete_eval_runs(self, _params: dict[str, str], request: Request) -> Reply:
        body = _body(DeleteEvalRunsRequest, request)
        self._database(request)
        wanted = set(body.eval_run_ids)
        with self.lock:
            now = self.clock()
            for run in self._runs:
                if run.id in wanted and run.deleted_at is None:
                    run.deleted_at = now
        return Reply(204)

    def _list_eval_runs(self, _params: dict[str, str], request: Request) -> Reply:
        query = _list_query(request)
        self._database(request)
        with self.lock:
            runs = [
                r.record for r in self._runs if r.deleted_at is None and query.matches(r.record)
            ]
        runs = query.sorted(runs)
        start = (query.page - 1) * query.limit
        page = runs[start : start + query.limit]
        # AgentOS counts the rows of the page's query: past the last page, it reports none.
        total = len(runs) if page else 0
        meta = {
            "page": query.page,
            "limit": query.limit,
            "total_pages": (total + query.limit - 1) // query.limit,
            "total_count": total,
            "search_time_ms": 0.0,
        }
        return Reply(200, {"data": [dict(r) for r in page], "meta": meta})

    def _stored(self, run_id: str) -> StoredRun:
        for run in self._runs:
            if run.id == run_id and run.deleted_at is None:
                return run
        raise detail(404, f"Eval run with id '{run_id}' not found")

    # --- control plane -----------------------------------------------------------------------

    def job_counts(self) -> dict[str, int]:
        counts = Counter(dict.fromkeys(JOB_STATUSES, 0))
        counts["running"] += len(self._running)
        counts["error"] += len(self._errors)
        counts.update("deleted" if r.deleted_at is not None else "stored" for r in self._runs)
        return dict(counts)

    def job_views(self) -> list[dict[str, Any]]:
        views = [
            {"id": run_id, "name": info["name"], "status": "running",
             "started_at": info["started_at"], "finished_at": None, "deleted_at": None}
            for run_id, info in self._running.items()
        ]  # fmt: skip
        views += [{**e, "status": "error", "deleted_at": None} for e in self._errors]
        views += [
            {
                "id": r.id,
                "name": r.record.get("name"),
                "status": "deleted" if r.deleted_at is not None else "stored",
                "eval_type": r.record["eval_type"],
                "agent_id": r.record.get("agent_id"),
                "team_id": r.record.get("team_id"),
                "db_id": r.db_id,
                "table": r.table,
                "started_at": r.started_at,
                "finished_at": r.stored_at,
                "deleted_at": r.deleted_at,
            }
            for r in self._runs
        ]
        return sorted(views, key=lambda view: view["started_at"])

    def forget_jobs(self) -> None:
        self._runs.clear()
        self._errors.clear()
        self._table_exists = False


@dataclass(frozen=True)
class _ListQuery:
    filters: dict[str, str]
    kind: str | None
    eval_types: frozenset[str] | None
    limit: int
    page: int
    sort_by: str
    descending: bool

    def matches(self, record: dict[str, Any]) -> bool:
        if any(record.get(name) != value for name, value in self.filters.items()):
            return False
        if self.kind is not None and record.get(f"{self.kind}_id") is None:
            return False
        return self.eval_types is None or record["eval_type"] in self.eval_types

    def sorted(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        field = self.sort_by if records and self.sort_by in records[0] else "created_at"
        # None sorts first ascending, as SQLite's NULLs do.
        ordered = sorted(records, key=lambda r: (r.get(field) is not None, str(r.get(field) or "")))
        return list(reversed(ordered)) if self.descending else ordered


def _list_query(request: Request) -> _ListQuery:
    """The query of ``GET /eval-runs`` as AgentOS reads it (FastAPI's 422 for bad values)."""
    raw = {name: request.param(name) for name in ListParams.model_fields}
    try:
        params = ListParams.model_validate({k: v for k, v in raw.items() if v is not None})
    except ValidationError as exc:
        raise detail(422, fastapi_errors(exc, "query")) from None
    eval_types = None
    if params.eval_types:
        items = [item.strip() for item in params.eval_types.split(",")]
        valid = [t.value for t in EvalType]
        for item in items:
            if item not in valid:
                raise detail(
                    422,
                    f"Invalid eval_type: '{item}' is not a valid EvalType. "
                    f"Valid types: {', '.join(valid)}",
                )
        eval_types = frozenset(items)
    if params.page == 0:
        # AgentOS computes a negative offset and fails (500).
        raise detail(500, "Internal server error (ValueError)")
    filters = {
        name: value
        for name in ("agent_id", "team_id", "workflow_id", "model_id")
        if (value := raw.get(name))
    }
    return _ListQuery(
        filters=filters,
        kind=params.type,
        eval_types=eval_types,
        limit=params.limit,
        page=params.page,
        sort_by=params.sort_by,
        descending=params.sort_order == "desc",
    )


def _body(model: type[_Model], request: Request) -> _Model:
    """The body read as FastAPI reads it: not JSON, missing or not fitting is a 422."""
    if not request.body:
        missing = {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}
        raise detail(422, [missing])
    try:
        doc = request.json()
    except ValueError as exc:
        invalid = {
            "type": "json_invalid",
            "loc": ["body", 0],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": str(exc).split(":")[0]},
        }
        raise detail(422, [invalid]) from None
    if not isinstance(doc, dict):
        # FastAPI reads a body model from attributes too, and says so.
        not_an_object = {
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": doc,
        }
        raise detail(422, [not_an_object])
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise detail(422, fastapi_errors(exc, "body")) from None
