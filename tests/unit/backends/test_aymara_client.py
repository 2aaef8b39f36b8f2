"""The Aymara client and its error classification, through the real SDK over an
in-memory httpx transport (no network): what each answer becomes in evalq's hierarchy."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from api_contracts import AymaraEvaluation, EvaluationRequest, ReasonCode
from api_contracts.examples import sample_aymara_request
from worker.backends.aymara import PAGE_SIZE, AymaraClient, as_json
from worker.errors import (
    PermanentError,
    RemoteConflict,
    RemoteJobNotFound,
    RetryableError,
    Throttled,
)

KEY = "aym-test-key-5b1f09"
RUN = {
    "eval_run_uuid": "score_run.1",
    "eval_uuid": "test.1",
    "status": "created",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "name": "evalq_x",
}


def envelope(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": {}}, "request_id": "rq"}


class Recorder:
    """An in-memory Aymara: answers each request with ``answer(request)``, keeps them all."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def client_for(answer: Callable[[httpx.Request], httpx.Response]) -> tuple[AymaraClient, Recorder]:
    recorder = Recorder(answer)
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    return AymaraClient("http://aymara.test", KEY, http_client=http), recorder


def status(
    code: int, body: Any = None, **headers: str
) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _request: httpx.Response(code, json=body, headers=headers)


def evaluation(**members: Any) -> AymaraEvaluation:
    request = sample_aymara_request()
    request["evaluation"].update(members)
    return EvaluationRequest.model_validate(request).evaluation_of(AymaraEvaluation)


def test_create_sends_the_body_and_the_query_with_the_key() -> None:
    client, seen = client_for(status(200, RUN))
    run = client.create_run(evaluation(workspace_uuid="ws", is_sandbox=True), name="evalq_x")
    assert run.eval_run_uuid == "score_run.1"
    (request,) = seen.requests
    assert (request.method, request.url.path) == ("POST", "/v2/eval-runs")
    assert dict(request.url.params) == {"workspace_uuid": "ws", "is_sandbox": "true"}
    assert request.headers["x-api-key"] == KEY
    body = json.loads(request.content)
    assert body["name"] == "evalq_x"
    assert body["eval_uuid"] == sample_aymara_request()["evaluation"]["eval_uuid"]
    assert "workspace_uuid" not in body
    assert "is_sandbox" not in body
    assert as_json(run)["created_at"].startswith("2026-01-01T00:00:00")


def test_the_producers_name_wins_over_the_derived_one() -> None:
    client, seen = client_for(status(200, RUN))
    client.create_run(evaluation(name="nightly"), name="evalq_x")
    assert json.loads(seen.requests[0].content)["name"] == "nightly"


@pytest.mark.parametrize(
    ("code", "remote_code", "reason"),
    [
        (400, "validation.invalid_request", ReasonCode.invalid_request),
        (404, "resource.not_found", ReasonCode.invalid_request),
        (422, "validation.invalid_request", ReasonCode.invalid_request),
        (401, "auth.invalid_key", ReasonCode.unauthorized),
        (403, "auth.forbidden", ReasonCode.unauthorized),
    ],
)
def test_a_refused_create_is_permanent_with_the_remote_message(
    code: int, remote_code: str, reason: ReasonCode
) -> None:
    client, seen = client_for(status(code, envelope(remote_code, "prompt p9 is not in eval")))
    with pytest.raises(PermanentError) as caught:
        client.create_run(evaluation())
    assert caught.value.reason is reason
    assert remote_code in str(caught.value)
    assert "prompt p9 is not in eval" in str(caught.value)
    assert len(seen.requests) == 1


def test_a_conflict_is_a_remote_conflict() -> None:
    client, _ = client_for(status(409, envelope("resource.conflict", "busy")))
    with pytest.raises(RemoteConflict):
        client.create_run(evaluation())


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_throttling_honours_retry_after(headers: dict[str, str], expected: float | None) -> None:
    client, seen = client_for(status(429, envelope("quota.limit_exceeded", "slow"), **headers))
    with pytest.raises(Throttled) as caught:
        client.get_run("score_run.1")
    assert caught.value.retry_after == expected
    assert not caught.value.spends_attempt
    assert len(seen.requests) == 1  # the SDK's own retries are off


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    client, _ = client_for(
        status(429, envelope("quota.limit_exceeded", "slow"), **{"Retry-After": later})
    )
    with pytest.raises(Throttled) as caught:
        client.get_run("score_run.1")
    assert caught.value.retry_after is not None
    assert 20 < caught.value.retry_after <= 30


@pytest.mark.parametrize("code", [500, 502, 503, 408])
def test_server_errors_are_retryable_and_spend_an_attempt(code: int) -> None:
    client, seen = client_for(status(code, envelope("server.internal_error", "oops")))
    with pytest.raises(RetryableError) as caught:
        client.create_run(evaluation())
    assert not isinstance(caught.value, Throttled)
    assert caught.value.spends_attempt
    assert len(seen.requests) == 1


@pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
def test_transport_failures_are_retryable(failure: Exception) -> None:
    def fail(_request: httpx.Request) -> httpx.Response:
        raise failure

    client, seen = client_for(fail)
    with pytest.raises(RetryableError):
        client.create_run(evaluation())
    assert len(seen.requests) == 1


def test_a_body_the_sdk_cannot_read_is_retryable() -> None:
    client, _ = client_for(lambda _r: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(RetryableError):
        client.get_run("score_run.1")


def test_a_missing_run_is_remote_job_not_found_and_deleting_it_is_done() -> None:
    client, seen = client_for(status(404, envelope("resource.not_found", "no such run")))
    with pytest.raises(RemoteJobNotFound):
        client.get_run("score_run.gone")
    with pytest.raises(RemoteJobNotFound):
        client.list_responses("score_run.gone")
    assert client.delete_run("score_run.gone", workspace_uuid="ws") is None
    delete = seen.requests[-1]
    assert (delete.method, delete.url.path) == ("DELETE", "/v2/eval-runs/score_run.gone")
    assert dict(delete.url.params) == {"workspace_uuid": "ws"}


def _not_found(message: str, **details: str) -> dict[str, Any]:
    body = envelope("resource.not_found", message)
    body["error"]["details"] = details
    return body


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_not_found("Organization not found", resource="organization"), ReasonCode.unauthorized),
        (_not_found("Workspace ws not found", resource="workspace"), ReasonCode.invalid_request),
        (_not_found("Organization not found for this API key"), ReasonCode.unauthorized),
        (_not_found("Workspace ws does not exist"), ReasonCode.invalid_request),
        (_not_found("Workspace ws (truncated name) not found"), ReasonCode.invalid_request),
    ],
)
def test_a_404_about_the_organization_or_workspace_is_permanent_not_a_gone_run(
    body: dict[str, Any], reason: ReasonCode
) -> None:
    client, _ = client_for(status(404, body))
    for call in (
        lambda: client.get_run("score_run.1", workspace_uuid="ws"),
        lambda: client.list_responses("score_run.1", workspace_uuid="ws"),
        lambda: client.delete_run("score_run.1", workspace_uuid="ws"),
        lambda: client.create_run(evaluation(workspace_uuid="ws")),
    ):
        with pytest.raises(PermanentError) as caught:
            call()
        assert caught.value.reason is reason
        assert body["error"]["message"] in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        _not_found("Eval run score_run.1 not found", resource="eval_run"),
        _not_found("Eval run score_run.1 not found in workspace ws"),
        _not_found("score_run.1 not found in this organization"),
        envelope("resource.not_found", "no such run"),
    ],
)
def test_a_404_about_the_run_itself_says_it_is_gone(body: dict[str, Any]) -> None:
    client, _ = client_for(status(404, body))
    with pytest.raises(RemoteJobNotFound):
        client.get_run("score_run.1", workspace_uuid="ws")
    assert client.delete_run("score_run.1", workspace_uuid="ws") is None


def test_the_key_never_shows_in_an_error() -> None:
    client, _ = client_for(status(401, envelope("auth.invalid_key", f"key {KEY} is not valid")))
    with pytest.raises(PermanentError) as caught:
        client.get_run("score_run.1")
    assert KEY not in str(caught.value)
    assert KEY not in repr(caught.value)


def _paged(
    total: int, make: Callable[[int], dict[str, Any]]
) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        items = [make(i) for i in range(offset, min(total, offset + limit))]
        return httpx.Response(200, json={"items": items, "count": total})

    return answer


def test_list_runs_reads_every_page() -> None:
    total = 2 * PAGE_SIZE + 17
    client, seen = client_for(_paged(total, lambda i: {**RUN, "eval_run_uuid": f"score_run.{i}"}))
    runs = client.list_runs(eval_uuid="test.1")
    assert [run.eval_run_uuid for run in runs] == [f"score_run.{i}" for i in range(total)]
    assert [r.url.params["offset"] for r in seen.requests] == ["0", "100", "200"]
    assert {r.url.params["eval_uuid"] for r in seen.requests} == {"test.1"}


def test_list_responses_reads_every_page() -> None:
    total = PAGE_SIZE  # a full last page needs one more, empty, page to be sure
    client, seen = client_for(
        _paged(
            total, lambda i: {"prompt_uuid": f"p{i}", "response_uuid": f"r{i}", "is_passed": True}
        )
    )
    responses = client.list_responses("score_run.1")
    assert len(responses) == total
    assert len(seen.requests) == 2
    assert seen.requests[0].url.path == "/v2/eval-runs/score_run.1/responses"


def test_settings_without_a_key_cannot_build_a_client() -> None:
    from worker.settings import Settings

    settings = Settings(aymara_base_url="http://aymara.test")
    with pytest.raises(PermanentError) as caught:
        AymaraClient.from_settings(settings)
    assert caught.value.reason is ReasonCode.unauthorized
    with pytest.raises(ValueError, match="EVALQ_AYMARA_BASE_URL"):
        AymaraClient.from_settings(Settings())
    built = AymaraClient.from_settings(
        Settings(aymara_base_url="http://a.test", aymara_api_key=KEY)
    )
    assert KEY not in repr(Settings(aymara_api_key=KEY))
    built.close()
