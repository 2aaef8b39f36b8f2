"""The Agno AgentOS client and its error classification over an in-memory httpx
transport (no network): requests on the wire, and what each answer becomes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from api_contracts import AgnoEvaluation, EvaluationRequest, ReasonCode
from api_contracts.examples import sample_agno_request
from worker.backends.agno import PAGE_SIZE, AgnoClient, RunRef
from worker.backends.agno.runs import AgnoBackend
from worker.errors import PermanentError, RemoteJobNotFound, RetryableError, Throttled
from worker.settings import Settings
from worker.targets.config import load_targets

KEY = "agno-os-key-77c1d2"
RUN = {"id": "run-1", "eval_type": "accuracy", "eval_data": {"avg_score": 10.0}, "name": "n"}


class Recorder:
    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def client_for(
    answer: Callable[[httpx.Request], httpx.Response], key: str | None = KEY
) -> tuple[AgnoClient, Recorder]:
    recorder = Recorder(answer)
    client = AgnoClient("http://agentos.test/", key, transport=httpx.MockTransport(recorder))
    return client, recorder


def status(
    code: int, body: Any = None, **headers: str
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(code, json=body, headers=headers)


def evaluation(**members: Any) -> AgnoEvaluation:
    request = sample_agno_request()
    request["evaluation"].update(members)
    return EvaluationRequest.model_validate(request).evaluation_of(AgnoEvaluation)


def test_run_eval_sends_body_query_key_and_the_callers_timeout() -> None:
    client, seen = client_for(status(200, RUN))
    run = client.run_eval(evaluation(db_id="db", table="evals"), timeout=123.0, name="evalq_x")
    assert run == RUN
    (request,) = seen.requests
    assert (request.method, request.url.path) == ("POST", "/eval-runs")
    assert dict(request.url.params) == {"db_id": "db", "table": "evals"}
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "eval_type": "accuracy",
        "input": "What is 2 + 2?",
        "expected_output": "4",
        "agent_id": "demo-agent",
        "name": "evalq_x",
    }
    assert request.extensions["timeout"]["read"] == 123.0


def test_no_key_no_authorization_header() -> None:
    client, seen = client_for(status(200, RUN), key=None)
    client.run_eval(evaluation(), timeout=5)
    assert "authorization" not in seen.requests[0].headers


def test_a_null_answer_is_an_eval_agentos_did_not_run() -> None:
    client, _ = client_for(lambda _r: httpx.Response(200, content=b"null"))
    with pytest.raises(PermanentError) as caught:
        client.run_eval(evaluation(), timeout=5)
    assert caught.value.reason is ReasonCode.invalid_request


@pytest.mark.parametrize(
    ("code", "body", "reason", "text"),
    [
        (400, {"detail": "Only one of agent_id or team_id must be provided"},
         ReasonCode.invalid_request, "Only one of agent_id or team_id"),
        (404, {"detail": "Agent with id 'x' not found", "error_code": "NOT_FOUND"},
         ReasonCode.invalid_request, "Agent with id 'x' not found"),
        (422, {"detail": [{"loc": ["body", "input"], "msg": "Field required", "type": "missing"}]},
         ReasonCode.invalid_request, "body.input: Field required"),
        (401, {"detail": "Invalid authentication token"}, ReasonCode.unauthorized,
         "Invalid authentication token"),
        (403, {"detail": "Access denied to run this agent"}, ReasonCode.unauthorized, "Access"),
    ],
)  # fmt: skip
def test_a_refused_run_is_permanent_with_agentos_detail(
    code: int, body: Any, reason: ReasonCode, text: str
) -> None:
    client, _ = client_for(status(code, body))
    with pytest.raises(PermanentError) as caught:
        client.run_eval(evaluation(), timeout=5)
    assert caught.value.reason is reason
    assert text in str(caught.value)
    assert f"HTTP {code}" in str(caught.value)


def test_throttling_honours_retry_after() -> None:
    client, _ = client_for(status(429, {"detail": "slow down"}, **{"Retry-After": "7"}))
    with pytest.raises(Throttled) as caught:
        client.get_run(RunRef("run-1"))
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_server_errors_are_retryable(code: int) -> None:
    client, _ = client_for(lambda _r: httpx.Response(code, text="upstream failed"))
    with pytest.raises(RetryableError) as caught:
        client.run_eval(evaluation(), timeout=5)
    assert "upstream failed" in str(caught.value)


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("eof")],
)
def test_transport_failures_are_retryable(failure: Exception) -> None:
    def fail(_request: httpx.Request) -> httpx.Response:
        raise failure

    client, seen = client_for(fail)
    with pytest.raises(RetryableError):
        client.run_eval(evaluation(), timeout=5)
    assert len(seen.requests) == 1


def test_a_missing_run_is_remote_job_not_found() -> None:
    client, seen = client_for(status(404, {"detail": "Eval run with id 'gone' not found"}))
    with pytest.raises(RemoteJobNotFound):
        client.get_run(RunRef("gone", "db"))
    with pytest.raises(RemoteJobNotFound):
        client.rename_run(RunRef("gone"), "new")
    assert dict(seen.requests[0].url.params) == {"db_id": "db"}
    assert json.loads(seen.requests[1].content) == {"name": "new"}


def test_the_key_never_shows_in_an_error() -> None:
    client, _ = client_for(status(401, {"detail": f"token {KEY} rejected"}))
    with pytest.raises(PermanentError) as caught:
        client.get_run(RunRef("run-1"))
    assert KEY not in str(caught.value)


def test_list_runs_reads_every_page_with_filters() -> None:
    total = 2 * PAGE_SIZE + 3

    def answer(request: httpx.Request) -> httpx.Response:
        page, limit = int(request.url.params["page"]), int(request.url.params["limit"])
        start = (page - 1) * limit
        data = [{**RUN, "id": f"run-{i}"} for i in range(start, min(total, start + limit))]
        pages = (total + limit - 1) // limit
        meta = {"page": page, "limit": limit, "total_count": total, "total_pages": pages}
        return httpx.Response(200, json={"data": data, "meta": meta})

    client, seen = client_for(answer)
    runs = client.list_runs(db_id="db", filters={"agent_id": "a", "eval_types": "accuracy"})
    assert [run["id"] for run in runs] == [f"run-{i}" for i in range(total)]
    assert [r.url.params["page"] for r in seen.requests] == ["1", "2", "3"]
    params = seen.requests[0].url.params
    assert (params["db_id"], params["agent_id"], params["eval_types"]) == ("db", "a", "accuracy")
    assert (params["sort_by"], params["sort_order"]) == ("created_at", "desc")


def test_bulk_delete_sends_one_call_per_database_and_table() -> None:
    client, seen = client_for(lambda _r: httpx.Response(204))
    calls = client.delete_runs(
        [RunRef("a"), RunRef("b"), RunRef("c", "db2"), RunRef("a"), RunRef("d", "db2", "t")]
    )
    assert calls == 3
    sent = {
        tuple(sorted(r.url.params.items())): json.loads(r.content)["eval_run_ids"]
        for r in seen.requests
    }
    assert sent == {
        (): ["a", "b"],
        (("db_id", "db2"),): ["c"],
        (("db_id", "db2"), ("table", "t")): ["d"],
    }
    assert {r.method for r in seen.requests} == {"DELETE"}
    assert client.delete_runs([]) == 0


def test_the_janitor_lists_the_default_database_then_each_configured_table(monkeypatch) -> None:
    # One run per database/table the call names; AgentOS's default has no query params.
    def answer(request: httpx.Request) -> httpx.Response:
        where = "/".join(request.url.params.get(k, "") for k in ("db_id", "table")).strip("/")
        data = [{**RUN, "id": f"run-in-{where or 'default'}"}]
        meta = {"page": 1, "limit": PAGE_SIZE, "total_count": 1, "total_pages": 1}
        return httpx.Response(200, json={"data": data, "meta": meta})

    client, _ = client_for(answer)
    monkeypatch.setattr(AgnoClient, "from_settings", classmethod(lambda cls, s: client))
    settings = Settings(
        agno_base_url="http://agentos.test", agno_janitor_tables="evals_db, reports/runs_v2"
    )
    (target,) = [t for t in load_targets(settings).targets if t.backend == "agno"]
    backend = AgnoBackend.for_target(settings, target)

    pages, token = [], None
    while True:
        page, token = backend.list_page(token)
        pages.append([(job.id, job.scope) for job in page])
        if token is None:
            break

    assert pages == [
        [("run-in-default", {})],
        [("run-in-evals_db", {"db_id": "evals_db"})],
        [("run-in-reports/runs_v2", {"db_id": "reports", "table": "runs_v2"})],
    ]
