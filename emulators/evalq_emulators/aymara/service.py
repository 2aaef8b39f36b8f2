"""The emulated Aymara API (``/v2/evals``, ``/v2/eval-runs``), as ``aymara-ai-sdk`` calls it.

Errors come in Aymara's envelope, ``{"error": {"code", "message", "details"},
"request_id"}``. Lists page with ``limit`` (default 100) and ``offset`` and answer
``{"items": [...], "count": <total>}``, oldest first. What the emulator decides where
Aymara documents nothing (docs/backends.md lists it): an unknown eval is 404
``resource.not_found``, a response to a prompt the eval does not have is 400
``validation.invalid_request``, a malformed body is 422; a new eval has its prompts at
once; ``eval_run_uuid`` in a create is ignored.

The account: the key's organization may be missing (``organization=False``) and a call
may name a ``workspace_uuid`` the organization does not have (``workspaces``: the known
ones; None, the default: every workspace exists). Aymara then answers 404
``resource.not_found`` about the organization or the workspace, as it answers 404 about a
missing run, so ``details.resource`` and the message say which (``organization``,
``workspace``, ``eval``, ``eval_run``). ``POST /_emulator/account`` changes both.

A run belongs to the workspace its create named (none: the key's current workspace). A
call sees the runs of the workspace it names, and without ``workspace_uuid`` those of the
key's current workspace ("omit for user's current workspace", the SDK's list); ``*`` and
``**`` (enterprise-wide) see every run. A run asked for in another workspace is 404
``eval_run``. Evals are shared by the organization's workspaces (Aymara documents
nothing of their scope).
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..common import Reply, Request, Service, ServiceError, markers_in
from ..common.markers import duration_marker
from .runs import ACTIVE_STATUSES, RUN_STATUSES, Eval, Run

DEFAULT_LIMIT: Final = 100
DEFAULT_PROMPTS: Final = 50

_ROUTES: Final = [
    ("CreateEval", "POST", re.compile(r"/v2/evals/?")),
    ("GetEval", "GET", re.compile(r"/v2/evals/(?P<eval_uuid>[^/]+)/?")),
    ("ListEvalPrompts", "GET", re.compile(r"/v2/evals/(?P<eval_uuid>[^/]+)/prompts/?")),
    ("CreateEvalRun", "POST", re.compile(r"/v2/eval-runs/?")),
    ("ListEvalRuns", "GET", re.compile(r"/v2/eval-runs/?")),
    ("GetEvalRun", "GET", re.compile(r"/v2/eval-runs/(?P<eval_run_uuid>[^/]+)/?")),
    ("DeleteEvalRun", "DELETE", re.compile(r"/v2/eval-runs/(?P<eval_run_uuid>[^/]+)/?")),
    (
        "ListEvalRunResponses",
        "GET",
        re.compile(r"/v2/eval-runs/(?P<eval_run_uuid>[^/]+)/responses/?"),
    ),
]


@dataclass(frozen=True)
class AymaraTiming:
    """Emulated seconds: a run waits ``pending_seconds`` in ``created``, then scores each
    response in ``seconds_per_response``."""

    pending_seconds: float = 2.0
    seconds_per_response: float = 3.0


class _Lax(BaseModel):
    model_config = ConfigDict(extra="allow")


class _FileReference(_Lax):
    file_uuid: str | None = None
    remote_file_path: str | None = None


class _Response(_Lax):
    prompt_uuid: str
    content: str | _FileReference | None = None
    content_type: str = "text"
    ai_refused: bool = False
    exclude_from_scoring: bool = False
    continue_thread: bool = False
    thread_uuid: str | None = None
    turn_number: int = 1


class _Example(_Lax):
    prompt: str
    response: str
    type: str


class _RunBody(_Lax):
    """What the service reads from a create (the SDK's ``RunCreateParams`` body)."""

    eval_uuid: str
    responses: list[_Response]
    name: str | None = None
    ai_description: str | None = None
    eval_run_examples: list[_Example] | None = None
    continue_thread: bool | None = None
    eval_run_uuid: str | None = None


class _EvalBody(_Lax):
    ai_description: str
    eval_type: str
    name: str | None = None
    num_prompts: int | None = None
    workspace_uuid: str | None = None
    is_sandbox: bool = False


_Body = TypeVar("_Body", bound=BaseModel)


def envelope(status: int, code: str, message: str, details: Any = None) -> Reply:
    return Reply(
        status,
        {
            "error": {"code": code, "message": message, "details": details or {}},
            "request_id": f"req_{uuid.uuid4().hex}",
        },
    )


def fail(status: int, code: str, message: str, details: Any = None) -> ServiceError:
    return ServiceError(envelope(status, code, message, details))


def _validation_details(exc: ValidationError) -> dict[str, Any]:
    return {
        "errors": [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
    }


#: The resource a 404 about the call's own resource names (``details.resource``).
_RESOURCE_OF = {"CreateEval": "eval", "GetEval": "eval", "ListEvalPrompts": "eval",
                "CreateEvalRun": "eval", "ListEvalRuns": "eval"}  # fmt: skip
#: Injectable error answers (``POST /_emulator/faults`` ``errors``): status -> envelope
#: code and message; a 404 may be about the key's organization or the workspace instead.
_ERRORS: Final = {
    "400": ("validation.invalid_request", "Injected: invalid request"),
    "401": ("auth.invalid_key", "Invalid or missing API key"),
    "403": ("auth.forbidden", "Injected: the key may not do this"),
    "404": ("resource.not_found", "Injected: {resource} not found"),
    "404:organization": ("resource.not_found", "Organization not found for this API key"),
    "404:workspace": ("resource.not_found", "Workspace ws-injected not found"),
    "409": ("resource.conflict", "Injected: the resource is in a conflicting state"),
    "422": ("validation.invalid_request", "Invalid request body"),
    "429": ("quota.limit_exceeded", "Rate limit exceeded, slow down"),
    "500": ("server.internal_error", "Internal server error"),
    "503": ("server.internal_error", "Service unavailable"),
}


class AymaraService(Service):
    operations = tuple(name for name, _, _ in _ROUTES)

    def __init__(
        self,
        *,
        api_key: str | None = None,
        timing: AymaraTiming | None = None,
        workspaces: Iterable[str] | None = None,
        **options: Any,
    ) -> None:
        self.api_key = api_key
        self.timing = timing or AymaraTiming()
        #: False: the key's organization is missing (every call answers 404).
        self.organization = True
        #: The workspaces that exist; None: any workspace a call names.
        self.workspaces: set[str] | None = None if workspaces is None else set(workspaces)
        self._evals: dict[str, Eval] = {}
        self._runs: list[Run] = []
        super().__init__(**options)

    # --- routing and errors ------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for name, route_method, pattern in _ROUTES:
            matched = pattern.fullmatch(path)
            if matched and method == route_method:
                return name, matched.groupdict()
        return None

    def authenticate(self, request: Request) -> None:
        given = request.headers.get("x-api-key")
        if not given or (self.api_key is not None and given != self.api_key):
            raise fail(401, "auth.invalid_key", "Invalid or missing API key")

    def unknown_route(self, request: Request) -> Reply:
        self.authenticate(request)  # a wrong key is refused before the route is
        return envelope(404, "resource.not_found", f"No route {request.method} {request.path}")

    @property
    def error_names(self) -> tuple[str, ...]:
        """Every error answer Aymara documents (HTTP statuses, and its two other 404s)."""
        return tuple(_ERRORS)

    def fault_reply(self, kind: str, operation: str) -> Reply:
        name = {"throttle": "429", "server_error": "500"}.get(kind, kind)
        code, message = _ERRORS[name]
        status, _, about = name.partition(":")
        resource = about or _RESOURCE_OF.get(operation, "eval_run")
        details: dict[str, Any] = {}
        if status == "404":
            details["resource"] = resource
            message = message.format(resource=resource.replace("_", " "))
        elif status == "422":
            details["errors"] = [{"loc": ["body"], "msg": "Injected", "type": "value_error"}]
        reply = envelope(int(status), code, message, details)
        if status == "429":
            reply.headers.update({"retry-after-ms": "1000", "retry-after": "1"})
        return reply

    def serve(self, operation: str, params: dict[str, str], request: Request) -> Reply:
        self._check_account(operation, request)
        handler = getattr(self, "_" + re.sub(r"(?<!^)([A-Z])", r"_\1", operation).lower())
        result: Reply = handler(params, request)
        return result

    def _check_account(self, operation: str, request: Request) -> None:
        """404 when the key's organization is missing, or the call names a workspace the
        organization does not have (in the query, or a new eval's body)."""
        with self.lock:
            if not self.organization:
                raise fail(404, "resource.not_found", "Organization not found for this API key",
                           {"resource": "organization"})  # fmt: skip
            named = [request.param("workspace_uuid")]
            if operation == "CreateEval":
                body = _json_or_none(request)
                named.append(body.get("workspace_uuid") if isinstance(body, dict) else None)
            for workspace in named:
                if workspace and not self._workspace_exists(workspace):
                    raise fail(404, "resource.not_found", f"Workspace {workspace} not found",
                               {"resource": "workspace", "workspace_uuid": workspace})  # fmt: skip

    def _workspace_exists(self, workspace: str) -> bool:
        # "*" and "**" are the list's wildcards (every workspace, the whole enterprise).
        return self.workspaces is None or workspace in ("*", "**") or workspace in self.workspaces

    def control(self, method: str, name: str, request: Request) -> Reply | None:
        """``GET|POST /_emulator/account``: ``{"organization": bool, "workspaces": [...] |
        null}`` (POST changes the members it is given)."""
        if name != "account" or method not in ("GET", "POST"):
            return None
        with self.lock:
            if method == "POST":
                doc = _json_or_none(request)
                if not isinstance(doc, dict):
                    return Reply(400, {"error": "account must be a JSON object"})
                if "organization" in doc:
                    self.organization = bool(doc["organization"])
                if "workspaces" in doc:
                    given = doc["workspaces"]
                    self.workspaces = None if given is None else {str(w) for w in given}
            known = None if self.workspaces is None else sorted(self.workspaces)
            return Reply(200, {"organization": self.organization, "workspaces": known})

    # --- evals ---------------------------------------------------------------------------

    def _create_eval(self, _params: dict[str, str], request: Request) -> Reply:
        body = _validated(_EvalBody, request)
        count = body.num_prompts if body.num_prompts is not None else DEFAULT_PROMPTS
        if count < 1:
            raise fail(422, "validation.invalid_request", "num_prompts must be at least 1")
        eval_uuid = f"test.{uuid.uuid4()}"
        name = body.name or f"Emulated {body.eval_type} eval"
        prompts = [
            {
                "prompt_uuid": f"question.{uuid.uuid4()}",
                "content": f"Emulated prompt {n} of {name}",
                "category": None,
                "thread_uuid": None,
                "turn_number": 1,
            }
            for n in range(1, count + 1)
        ]
        given = body.model_dump(mode="json", exclude_none=True)
        given.update(name=name, modality=given.get("modality", "text"),
                     language=given.get("language", "en"))  # fmt: skip
        with self.lock:
            made = Eval(eval_uuid, given, prompts, self.clock())
            self._evals[eval_uuid] = made
            return Reply(200, made.view())

    def _get_eval(self, params: dict[str, str], _request: Request) -> Reply:
        with self.lock:
            return Reply(200, self._eval(params["eval_uuid"]).view())

    def _list_eval_prompts(self, params: dict[str, str], request: Request) -> Reply:
        limit, offset = _page(request)
        with self.lock:
            prompts = self._eval(params["eval_uuid"]).prompts
            return Reply(200, {"items": prompts[offset : offset + limit], "count": len(prompts)})

    def _eval(self, eval_uuid: str) -> Eval:
        found = self._evals.get(eval_uuid)
        if found is None:
            raise fail(404, "resource.not_found", f"Eval {eval_uuid} not found",
                       {"resource": "eval", "eval_uuid": eval_uuid})  # fmt: skip
        return found

    # --- runs ----------------------------------------------------------------------------

    def _create_eval_run(self, _params: dict[str, str], request: Request) -> Reply:
        body = _validated(_RunBody, request)
        sandbox = (request.param("is_sandbox") or "false").lower() == "true"
        with self.lock:
            evaluation = self._eval(body.eval_uuid)
            known = {p["prompt_uuid"] for p in evaluation.prompts}
            unknown = [r.prompt_uuid for r in body.responses if r.prompt_uuid not in known]
            if unknown:
                raise fail(
                    400, "validation.invalid_request",
                    f"Prompts not in eval {body.eval_uuid}: {', '.join(unknown)}",
                    {"prompt_uuids": unknown},
                )  # fmt: skip
            stored = body.model_dump(mode="json", exclude={"eval_run_uuid", "continue_thread"})
            markers = markers_in(body.name, body.ai_description)
            now = self.clock()
            scorable = sum(1 for r in body.responses if not r.exclude_from_scoring)
            duration = duration_marker(markers)
            scoring = self.timing.seconds_per_response * scorable if duration is None else duration
            processing_at = now + self.real_seconds(self.timing.pending_seconds)
            run = Run(
                eval_run_uuid=f"score_run.{uuid.uuid4()}",
                eval=evaluation,
                body=stored,
                workspace_uuid=_workspace(request),
                is_sandbox=sandbox,
                created_at=now,
                processing_at=processing_at,
                ends_at=processing_at + self.real_seconds(scoring),
                fails=markers.get("outcome") == "failed",
                response_uuids=[f"answer.{uuid.uuid4()}" for _ in body.responses],
            )
            self._runs.append(run)
            self.total_jobs += 1
            self._update_max_active()
            return Reply(200, run.view(now))

    def _get_eval_run(self, params: dict[str, str], request: Request) -> Reply:
        with self.lock:
            run = self._run(params["eval_run_uuid"], _workspace(request))
            return Reply(200, run.view(self.clock()))

    def _list_eval_runs(self, _params: dict[str, str], request: Request) -> Reply:
        limit, offset = _page(request)
        eval_uuid, workspace = request.param("eval_uuid"), _workspace(request)
        with self.lock:
            now = self.clock()
            runs = [
                run for run in self._runs
                if run.deleted_at is None
                and (eval_uuid is None or run.eval.eval_uuid == eval_uuid)
                and _sees(workspace, run)
            ]  # fmt: skip
            page = [run.view(now) for run in runs[offset : offset + limit]]
            return Reply(200, {"items": page, "count": len(runs)})

    def _list_eval_run_responses(self, params: dict[str, str], request: Request) -> Reply:
        limit, offset = _page(request)
        with self.lock:
            run = self._run(params["eval_run_uuid"], _workspace(request))
            responses = run.scored_responses(self.clock())
            return Reply(
                200, {"items": responses[offset : offset + limit], "count": len(responses)}
            )

    def _delete_eval_run(self, params: dict[str, str], request: Request) -> Reply:
        with self.lock:
            run = self._run(params["eval_run_uuid"], _workspace(request))
            now = self.clock()
            refuses = markers_in(run.body.get("name"), run.body.get("ai_description"))
            if refuses.get("delete") == "conflict" and run.status(now) in ACTIVE_STATUSES:
                raise fail(409, "resource.conflict",
                           f"Eval run {run.eval_run_uuid} is still being scored")  # fmt: skip
            run.deleted_at = now
            return Reply(204)

    def _run(self, eval_run_uuid: str, workspace: str | None) -> Run:
        """The run, if the workspace a call names (None: the current one) holds it."""
        for run in self._runs:
            if (
                run.eval_run_uuid == eval_run_uuid
                and run.deleted_at is None
                and _sees(workspace, run)
            ):
                return run
        raise fail(404, "resource.not_found", f"Eval run {eval_run_uuid} not found",
                   {"resource": "eval_run", "eval_run_uuid": eval_run_uuid})  # fmt: skip

    # --- control plane -------------------------------------------------------------------

    def _update_max_active(self) -> None:
        now = self.clock()
        active = sum(1 for run in self._runs if run.status_or_deleted(now) in ACTIVE_STATUSES)
        self.max_active = max(self.max_active, active)

    def job_counts(self) -> dict[str, int]:
        now = self.clock()
        counts = Counter({status: 0 for status in (*RUN_STATUSES, "deleted")})
        counts.update(run.status_or_deleted(now) for run in self._runs)
        return dict(counts)

    def job_views(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [run.control_view(now) for run in self._runs]

    def forget_jobs(self) -> None:
        self._runs.clear()
        self._evals.clear()


def _workspace(request: Request) -> str | None:
    """The workspace a call names (None: the key's current workspace)."""
    return request.param("workspace_uuid") or None


def _sees(workspace: str | None, run: Run) -> bool:
    """Whether a call naming ``workspace`` sees ``run`` (``*``, ``**``: every workspace)."""
    return workspace in ("*", "**") or run.workspace_uuid == workspace


def _json_or_none(request: Request) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


def _validated(model: type[_Body], request: Request) -> _Body:
    """The body read as ``model``; a body that is not JSON or does not fit: 422."""
    try:
        body = request.json()
    except ValueError:
        raise fail(422, "validation.invalid_request", "Body is not JSON") from None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise fail(
            422, "validation.invalid_request", "Invalid request body", _validation_details(exc)
        ) from None


def _page(request: Request) -> tuple[int, int]:
    """``limit`` (default 100, at least 1) and ``offset`` (default 0, not negative)."""
    try:
        limit = int(request.param("limit") or DEFAULT_LIMIT)
        offset = int(request.param("offset") or 0)
    except ValueError:
        raise fail(422, "validation.invalid_request", "limit and offset are integers") from None
    if limit < 1 or offset < 0:
        raise fail(422, "validation.invalid_request", "limit >= 1 and offset >= 0")
    return limit, offset
