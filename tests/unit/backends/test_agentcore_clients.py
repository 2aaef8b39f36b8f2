"""The harness and evaluator clients classify every failure (fake boto3 clients), and the
session ids they are given are valid and deterministic."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import botocore.eventstream
import botocore.exceptions
import pytest
import urllib3.exceptions
from hypothesis import given
from hypothesis import strategies as st

from api_contracts import ReasonCode
from worker.backends.agentcore import EvaluatorClient, HarnessClient, session_id
from worker.backends.agentcore.batch import _check_echo
from worker.backends.agentcore.client import client_token
from worker.errors import (
    EvaluatorLocked,
    PermanentError,
    RemoteConflict,
    RemoteRejected,
    RetryableError,
    StreamInterrupted,
    Throttled,
)
from worker.settings import Settings

HARNESS = "arn:aws:bedrock-agentcore:us-east-1:123456789012:harness/bot-abcdefghij"
SESSION = "evalq-" + "a" * 40
SESSION_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9-_]*")


def client_error(code: str, status: int, message: str = "m", op: str = "X") -> Exception:
    return botocore.exceptions.ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        op,
    )


def stream_error(code: str) -> Exception:
    return botocore.exceptions.EventStreamError(
        {"Error": {"Code": code, "Message": "went wrong"}}, "InvokeHarness"
    )


TURN: list[dict[str, Any]] = [
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}}},
    {"messageStop": {"stopReason": "tool_use"}},
    {"messageStart": {"role": "assistant"}},
    {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Your order "}}},
    {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "ships today."}}},
    {"contentBlockStop": {"contentBlockIndex": 0}},
    {"messageStop": {"stopReason": "end_turn"}},
    {"metadata": {"usage": {"inputTokens": 3}, "metrics": {"latencyMs": 12}}},
]


class FakeStream:
    def __init__(self, events: list[dict[str, Any]], then: Exception | None = None) -> None:
        self.events, self.then, self.closed = events, then, False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.events
        if self.then is not None:
            raise self.then

    def close(self) -> None:
        self.closed = True


class FakeDataPlane:
    def __init__(self, stream: FakeStream | None = None, error: Exception | None = None) -> None:
        self.stream, self.error, self.calls = stream, error, []

    def invoke_harness(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        if self.error is not None:
            raise self.error
        return {"stream": self.stream}


def invoke(fake: FakeDataPlane, **kw: Any) -> Any:
    return HarnessClient(fake).invoke(HARNESS, SESSION, [{"role": "user", "content": []}], **kw)


# --- session ids ------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=128), st.integers(0, 499), st.integers(0, 50))
def test_session_ids_are_valid_and_deterministic(request_id: str, index: int, attempt: int) -> None:
    sid = session_id(request_id, index, attempt)
    assert 33 <= len(sid) <= 100
    assert SESSION_RE.fullmatch(sid)
    assert sid == session_id(request_id, index, attempt)
    assert sid != session_id(request_id, index, attempt + 1)
    assert sid != session_id(request_id, index + 1, attempt)
    assert sid != session_id(request_id + "x", index, attempt)


def test_session_id_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="negative"):
        session_id("r", -1, 0)


# --- the harness client -----------------------------------------------------------------------


def test_a_complete_stream() -> None:
    stream = FakeStream(TURN)
    fake = FakeDataPlane(stream)
    run = invoke(fake, qualifier="prod")
    assert run.stop_reason == "end_turn"
    assert run.text == "Your order ships today."
    assert run.metadata == {"usage": {"inputTokens": 3}, "metrics": {"latencyMs": 12}}
    assert run.events == len(TURN)
    assert run.session_id == SESSION
    assert stream.closed
    assert fake.calls[0]["runtimeSessionId"] == SESSION
    assert fake.calls[0]["qualifier"] == "prod"
    assert "qualifier" not in invoke(FakeDataPlane(FakeStream(TURN))).__dict__ or True


def test_overrides_are_passed_through_as_given() -> None:
    overrides = {
        "model": {"bedrockModelConfig": {"modelId": "m2", "temperature": 0.2}},
        "systemPrompt": [{"text": "Be brief."}],
        "skills": [{"awsSkills": {"paths": ["core-skills/*"]}}],
        "maxIterations": 3,
        "runtimeUserId": "user-7",
    }
    fake = FakeDataPlane(FakeStream(TURN))
    assert invoke(fake, overrides=overrides).stop_reason == "end_turn"
    assert fake.calls[0] == {
        **overrides,
        "harnessArn": HARNESS,
        "runtimeSessionId": SESSION,
        "messages": [{"role": "user", "content": []}],
    }
    plain = FakeDataPlane(FakeStream(TURN))
    invoke(plain)
    assert set(plain.calls[0]) == {"harnessArn", "runtimeSessionId", "messages"}


def test_overrides_never_replace_the_harness_session_or_messages() -> None:
    fake = FakeDataPlane(FakeStream(TURN))
    clash = {"harnessArn": "other", "runtimeSessionId": "other", "messages": [], "maxTokens": 9}
    invoke(fake, overrides=clash, qualifier="prod")
    call = fake.calls[0]
    assert (call["harnessArn"], call["runtimeSessionId"]) == (HARNESS, SESSION)
    assert call["messages"] == [{"role": "user", "content": []}]
    assert (call["maxTokens"], call["qualifier"]) == (9, "prod")


@pytest.mark.parametrize(
    "failure",
    [
        urllib3.exceptions.ProtocolError("Response ended prematurely"),
        urllib3.exceptions.ReadTimeoutError(None, "/", "Read timed out."),  # type: ignore[arg-type]
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"),
        botocore.eventstream.ChecksumMismatch(1, 2),
        ConnectionResetError("reset"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_broken_stream_is_interrupted(failure: Exception) -> None:
    stream = FakeStream(TURN[:4], then=failure)
    with pytest.raises(StreamInterrupted) as exc:
        invoke(FakeDataPlane(stream))
    assert SESSION in str(exc.value)
    assert "4 events" in str(exc.value)
    assert stream.closed


def test_a_stream_without_message_stop_is_interrupted() -> None:
    with pytest.raises(StreamInterrupted, match="without a messageStop"):
        invoke(FakeDataPlane(FakeStream(TURN[:1])))


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("internalServerException", StreamInterrupted),
        ("runtimeClientError", StreamInterrupted),
        ("validationException", RemoteRejected),
        ("somethingNew", RemoteRejected),
    ],
)
def test_in_stream_errors(code: str, kind: type[Exception]) -> None:
    with pytest.raises(kind) as exc:
        invoke(FakeDataPlane(FakeStream(TURN[:2], then=stream_error(code))))
    assert code in str(exc.value)
    assert SESSION in str(exc.value)
    if kind is RemoteRejected:
        assert exc.value.reason == ReasonCode.remote_validation  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (client_error("ThrottlingException", 429), Throttled, None),
        (client_error("ServiceQuotaExceededException", 402), Exception, None),
        (client_error("ValidationException", 400), RemoteRejected, ReasonCode.remote_validation),
        (
            client_error("ResourceNotFoundException", 404, "Harness x not found"),
            PermanentError,
            ReasonCode.invalid_request,
        ),
        (client_error("AccessDeniedException", 403), PermanentError, ReasonCode.access_denied),
        (client_error("InternalServerException", 500), RetryableError, None),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"),
            RetryableError,
            None,
        ),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(v)[:30],
)
def test_errors_before_the_stream_leave_the_session_unused(
    error: Exception, kind: type[Exception], reason: ReasonCode | None
) -> None:
    with pytest.raises(kind) as exc:
        invoke(FakeDataPlane(error=error))
    assert not isinstance(exc.value, StreamInterrupted)
    if reason is not None:
        assert exc.value.reason == reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "error",
    [
        botocore.exceptions.ConnectionClosedError(endpoint_url="http://x"),
        botocore.exceptions.ReadTimeoutError(endpoint_url="http://x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_no_answer_means_the_session_may_be_used(error: Exception) -> None:
    with pytest.raises(StreamInterrupted, match="no answer"):
        invoke(FakeDataPlane(error=error))


# --- the evaluator client ---------------------------------------------------------------------


class FakeControlPlane:
    def __init__(self, **answers: Any) -> None:
        self.answers, self.calls = answers, []

    def __getattr__(self, operation: str) -> Any:
        def call(**params: Any) -> Any:
            self.calls.append((operation, params))
            answer = self.answers[operation]
            if callable(answer):
                answer = answer(**params)
            if isinstance(answer, Exception):
                raise answer
            return {**answer, "ResponseMetadata": {"HTTPStatusCode": 200}}

        return call


def test_update_sends_the_derived_client_token() -> None:
    fake = FakeControlPlane(update_evaluator={"evaluatorId": "j-abcdefghij", "status": "UPDATING"})
    out = EvaluatorClient(fake).update("j-abcdefghij", {"description": "v2"}, "rollout-7")
    assert out == {"evaluatorId": "j-abcdefghij", "status": "UPDATING"}
    ((_, params),) = fake.calls
    assert params == {
        "description": "v2",
        "evaluatorId": "j-abcdefghij",
        "clientToken": client_token("rollout-7"),
    }


def test_an_update_answered_about_another_evaluator_is_an_earlier_rollout_s() -> None:
    # The service ignores an update whose clientToken it saw, answering as it did then.
    earlier = {"evaluatorId": "other-abcdefghij", "status": "ACTIVE"}
    fake = FakeControlPlane(update_evaluator=earlier)
    with pytest.raises(PermanentError, match="other-abcdefghij") as exc:
        EvaluatorClient(fake).update("j-abcdefghij", {"description": "v2"}, "rollout-7")
    assert exc.value.reason == ReasonCode.idempotency_conflict


def _locked_fake(locked: bool, status: str = "ACTIVE") -> FakeControlPlane:
    return FakeControlPlane(
        update_evaluator=client_error("ConflictException", 409, "conflict"),
        get_evaluator={
            "evaluatorId": "j-abcdefghij",
            "lockedForModification": locked,
            "status": status,
        },
        list_online_evaluation_configs={
            "onlineEvaluationConfigs": [
                {
                    "onlineEvaluationConfigId": "prod-abcdefghij",
                    "onlineEvaluationConfigName": "prod",
                    "executionStatus": "ENABLED",
                },
                {
                    "onlineEvaluationConfigId": "off-abcdefghij",
                    "onlineEvaluationConfigName": "off",
                    "executionStatus": "DISABLED",
                },
                {
                    "onlineEvaluationConfigId": "other-abcdefghij",
                    "onlineEvaluationConfigName": "other",
                    "executionStatus": "ENABLED",
                },
            ]
        },
        get_online_evaluation_config=lambda onlineEvaluationConfigId: {
            "evaluators": [{"evaluatorId": "j-abcdefghij"}]
            if onlineEvaluationConfigId == "prod-abcdefghij"
            else [{"evaluatorId": "Builtin.Helpfulness"}]
        },
    )


def test_a_locked_evaluator_names_its_lock() -> None:
    with pytest.raises(EvaluatorLocked) as exc:
        EvaluatorClient(_locked_fake(True)).update("j-abcdefghij", {"description": "x"}, "r")
    assert exc.value.reason == ReasonCode.evaluator_locked
    assert "prod (prod-abcdefghij)" in str(exc.value)
    assert "other" not in str(exc.value)
    assert "off" not in str(exc.value).replace("offline", "")


def test_a_lock_whose_configs_cannot_be_read_is_still_a_lock() -> None:
    fake = _locked_fake(True)
    fake.answers["list_online_evaluation_configs"] = client_error("AccessDeniedException", 403)
    with pytest.raises(EvaluatorLocked, match="could not read"):
        EvaluatorClient(fake).update("j-abcdefghij", {"description": "x"}, "r")


@pytest.mark.parametrize("status", ["UPDATING", "CREATING"])
def test_a_busy_evaluator_is_retryable(status: str) -> None:
    with pytest.raises(RetryableError, match=status):
        EvaluatorClient(_locked_fake(False, status)).update(
            "j-abcdefghij", {"level": "SESSION"}, "r"
        )


def test_another_conflict_is_permanent() -> None:
    with pytest.raises(RemoteConflict):
        EvaluatorClient(_locked_fake(False)).update("j-abcdefghij", {"level": "SESSION"}, "r")


@pytest.mark.parametrize("operation", ["get", "update"])
def test_an_unknown_evaluator_is_an_invalid_request_with_the_service_message(
    operation: str,
) -> None:
    missing = client_error("ResourceNotFoundException", 404, "Evaluator j-abcdefghij not found")
    fake = FakeControlPlane(get_evaluator=missing, update_evaluator=missing)
    client = EvaluatorClient(fake)
    call = (
        (lambda: client.get("j-abcdefghij"))
        if operation == "get"
        else (lambda: client.update("j-abcdefghij", {"level": "TRACE"}, "r"))
    )
    with pytest.raises(PermanentError) as exc:
        call()
    assert exc.value.reason == ReasonCode.invalid_request
    assert str(exc.value) == "Evaluator j-abcdefghij not found"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (client_error("ThrottlingException", 429), Throttled),
        (client_error("InternalServerException", 500), RetryableError),
        (client_error("ValidationException", 400), RemoteRejected),
        (client_error("AccessDeniedException", 403), PermanentError),
    ],
)
def test_other_failures_are_classified_as_everywhere(
    error: Exception, kind: type[Exception]
) -> None:
    with pytest.raises(kind):
        EvaluatorClient(FakeControlPlane(update_evaluator=error)).update(
            "j-abcdefghij", {"level": "TRACE"}, "r"
        )


def test_control_endpoint_defaults_to_the_data_plane_s() -> None:
    assert Settings(agentcore_endpoint_url="http://a").control_endpoint_url == "http://a"
    both = Settings(agentcore_endpoint_url="http://a", agentcore_control_endpoint_url="http://b")
    assert both.control_endpoint_url == "http://b"
    assert Settings().control_endpoint_url is None


# --- a start's answer echoes what was asked ----------------------------------------------------

ASKED = {
    "batchEvaluationName": "nightly",
    "evaluators": [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "Builtin.Correctness"}],
    "tags": {"team": "evals"},
    "clientToken": client_token("r1"),
}


@pytest.mark.parametrize(
    "answer",
    [
        {"evaluators": list(reversed(ASKED["evaluators"]))},  # in another order
        {"tags": {"team": "evals", "aws:added": "x"}},  # a tag the service added
        {"insights": [], "description": ""},  # empty, where nothing was asked
        {},  # the answer leaves the members out
    ],
)
def test_a_start_answer_that_echoes_the_request_is_ours(answer: dict[str, Any]) -> None:
    _check_echo(ASKED, {"batchEvaluationId": "nightly-abcdefghij", **answer})


@pytest.mark.parametrize(
    ("answer", "member"),
    [
        ({"batchEvaluationName": "earlier"}, "batchEvaluationName"),
        ({"evaluators": [{"evaluatorId": "Builtin.Helpfulness"}]}, "evaluators"),
        ({"tags": {"team": "search"}}, "tags"),
        ({"description": "an earlier run"}, "description"),
        ({"insights": [{"insightId": "Builtin.Insight.FailureAnalysis"}]}, "insights"),
    ],
)
def test_a_start_answered_with_another_request_s_job_is_a_conflict(
    answer: dict[str, Any], member: str
) -> None:
    with pytest.raises(PermanentError, match=member) as exc:
        _check_echo(ASKED, {"batchEvaluationId": "earlier-abcdefghij", **answer})
    assert exc.value.reason == ReasonCode.idempotency_conflict


def test_every_targets_session_shares_one_parsed_service_model() -> None:
    # A session of its own parses botocore's models again: 137 ms per new target's client.
    from worker.backends.agentcore.client import session_for
    from worker.targets.config import TargetSpec

    settings = Settings(aws_access_key_id="k", aws_secret_access_key="s")
    sessions = [
        session_for(settings, TargetSpec(name=name, region=region, role_arn=role).resolve(settings))
        for name, region, role in (
            ("a", "us-east-1", None),
            ("b", "eu-west-1", None),
            ("c", "us-west-2", "arn:aws:iam::123456789012:role/evalq"),
        )
    ]
    loaders = {id(s._session.get_component("data_loader")) for s in sessions}
    assert len(loaders) == 1
    assert {s.region_name for s in sessions} == {"us-east-1", "eu-west-1", "us-west-2"}


def test_preloaded_models_are_not_read_again_by_the_clients_of_a_target(monkeypatch):
    """The worker preloads before it forks its pool: a pool process's clients then read
    no service data of their own (its pages stay shared)."""
    import botocore.loaders

    from worker.backends.agentcore import client

    client.preload()
    reads: list[str] = []
    real = botocore.loaders.JSONFileLoader.load_file

    def counted(self: Any, file_path: str) -> Any:
        reads.append(file_path)
        return real(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted)
    settings = Settings(aws_region="eu-west-1", aws_access_key_id="k", aws_secret_access_key="s")
    client.make_client(settings)
    client.make_control_client(settings)
    assert reads == []
