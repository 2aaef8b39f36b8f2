"""evalq's production clients (HarnessClient, EvaluatorClient) against the emulator over
HTTP, built from Settings as the worker builds them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from api_contracts import EvaluatorUpdateRequest, ReasonCode, ScenarioRun
from evalq_emulators.agentcore import EmulatorServer
from worker.backends.agentcore import (
    EvaluatorClient,
    HarnessClient,
    make_control_client,
    session_id,
)
from worker.errors import (
    EvaluatorLocked,
    PermanentError,
    RemoteRejected,
    RetryableError,
    StreamInterrupted,
    Throttled,
)
from worker.settings import Settings

from .test_emulator_contract import control, wait_for
from .test_emulator_evaluators import JUDGE, NEW_JUDGE, online_config
from .test_emulator_evaluators import make_control_client as boto_control

HARNESS = "arn:aws:bedrock-agentcore:us-east-1:123456789012:harness/support_bot-abcdefghij"


def settings(url: str, **overrides: Any) -> Settings:
    return Settings(
        agentcore_endpoint_url=url,
        aws_region="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        **overrides,
    )


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    return make_emulator(update_seconds=300.0)


@pytest.fixture
def harness(emulator: EmulatorServer) -> HarnessClient:
    return HarnessClient.from_settings(settings(emulator.url))


@pytest.fixture
def evaluators(emulator: EmulatorServer) -> EvaluatorClient:
    return EvaluatorClient.from_settings(settings(emulator.url))


def run_item(harness: HarnessClient, item: dict[str, Any], index: int = 0, attempt: int = 0) -> Any:
    run = ScenarioRun.model_validate({"harnessArn": HARNESS, "items": [item]})
    sid = session_id("req-1", index, attempt)
    return harness.invoke(HARNESS, sid, run.items[0].harness_messages(), qualifier="DEFAULT")


# --- harness --------------------------------------------------------------------------------


def test_an_item_runs_to_the_end_of_its_stream(
    emulator: EmulatorServer, harness: HarnessClient
) -> None:
    run = run_item(harness, {"prompt": "Where is order 7?"})
    assert run.stop_reason == "end_turn"
    assert run.text.startswith("Turn 1: an answer to 'Where is order 7?'")
    assert run.metadata["usage"]["totalTokens"] > 0
    assert run.session_id == session_id("req-1", 0, 0)
    (sess,) = control(emulator.url, "sessions")
    assert sess["session_id"] == run.session_id
    assert sess["qualifier"] == "DEFAULT"
    assert sess["invocations"][0]["outcome"] == "completed"


def test_messages_items_and_stop_reasons(harness: HarnessClient) -> None:
    item = {
        "messages": [
            {"role": "user", "content": [{"text": "Summarise"}]},
            {"role": "assistant", "content": [{"text": "What?"}]},
            {"role": "user", "content": [{"text": "The policy [emulator:stop_reason=max_tokens]"}]},
        ]
    }
    assert run_item(harness, item).stop_reason == "max_tokens"


def test_a_broken_stream_is_interrupted_and_a_new_attempt_succeeds(
    emulator: EmulatorServer, harness: HarnessClient
) -> None:
    item = {"prompt": "flaky [emulator:break=once]"}
    with pytest.raises(StreamInterrupted) as exc:
        run_item(harness, item, attempt=0)
    assert session_id("req-1", 0, 0) in str(exc.value)
    assert run_item(harness, item, attempt=1).stop_reason == "end_turn"
    outcomes = {
        s["session_id"]: s["invocations"][0]["outcome"] for s in control(emulator.url, "sessions")
    }
    assert outcomes == {session_id("req-1", 0, 0): "broken", session_id("req-1", 0, 1): "completed"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("runtimeClientError", StreamInterrupted),
        ("internalServerException", StreamInterrupted),
        ("validationException", RemoteRejected),
    ],
)
def test_in_stream_errors_are_classified(
    emulator: EmulatorServer, harness: HarnessClient, name: str, kind: type[Exception]
) -> None:
    control(emulator.url, "faults", {"stream_errors": {name: 1.0}})
    with pytest.raises(kind, match=name):
        run_item(harness, {"prompt": "x"})


def test_errors_before_the_stream(emulator: EmulatorServer, harness: HarnessClient) -> None:
    other_account = HARNESS.replace("123456789012", "999999999999")
    with pytest.raises(PermanentError) as exc:
        harness.invoke(
            other_account, session_id("r", 0, 0), [{"role": "user", "content": [{"text": "x"}]}]
        )
    assert exc.value.reason == ReasonCode.invalid_request
    assert "not found" in str(exc.value)
    control(emulator.url, "faults", {"throttle": 1.0, "operations": ["InvokeHarness"]})
    with pytest.raises(Throttled):
        run_item(harness, {"prompt": "x"})
    assert control(emulator.url, "sessions") == []


def test_a_silent_stream_times_out_as_interrupted(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    # Each frame waits ~1 s (20,000 emulated s over ~20 frames at 1000x); the client's
    # read timeout is 0.2 s.
    emulator = make_emulator(harness_seconds=20_000.0)
    client = HarnessClient.from_settings(settings(emulator.url, harness_read_timeout=0.2))
    with pytest.raises(StreamInterrupted):
        run_item(client, {"prompt": "slow"})


# --- evaluators ------------------------------------------------------------------------------


def create(emulator: EmulatorServer, name: str = "judge", **kw: Any) -> str:
    cp = boto_control(emulator.url)
    out = cp.create_evaluator(evaluatorName=name, evaluatorConfig=JUDGE, level="SESSION", **kw)
    evaluator_id = str(out["evaluatorId"])
    wait_for(lambda: cp.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE")
    return evaluator_id


def rollout(evaluator_id: str, update: dict[str, Any], request_id: str = "rollout-1") -> Any:
    return EvaluatorUpdateRequest.model_validate(
        {
            "request_id": request_id,
            "producer": "quality",
            "evaluator_id": evaluator_id,
            "update": update,
        }
    )


def test_an_update_runs_once_per_request_id(
    emulator: EmulatorServer, evaluators: EvaluatorClient
) -> None:
    evaluator_id = create(emulator)
    request = rollout(evaluator_id, {"evaluatorConfig": NEW_JUDGE})
    kwargs = request.update.to_boto3_kwargs()
    first = evaluators.update(evaluator_id, kwargs, request.request_id)
    again = evaluators.update(evaluator_id, kwargs, request.request_id)  # a redelivery
    assert first == again
    assert first["status"] == "UPDATING"
    assert isinstance(first["updatedAt"], str)
    assert evaluators.get(evaluator_id)["status"] == "UPDATING"
    wait_for(lambda: evaluators.get(evaluator_id)["status"] == "ACTIVE")
    body = evaluators.get(evaluator_id)
    assert body["evaluatorConfig"] == NEW_JUDGE
    (view,) = [e for e in control(emulator.url, "evaluators") if e["evaluatorId"] == evaluator_id]
    assert len(view["update_calls"]) == 1
    # Another rollout while this one runs must wait: retryable, not a dead letter.
    evaluators.update(evaluator_id, {"description": "v3"}, "rollout-2")
    with pytest.raises(RetryableError, match="UPDATING"):
        evaluators.update(evaluator_id, {"description": "v4"}, "rollout-3")


def test_a_locked_evaluator_is_evaluator_locked_naming_the_config(
    emulator: EmulatorServer, evaluators: EvaluatorClient
) -> None:
    evaluator_id = create(emulator)
    config_id = online_config(boto_control(emulator.url), "prod_watch", [evaluator_id])
    with pytest.raises(EvaluatorLocked) as exc:
        evaluators.update(evaluator_id, {"description": "x"}, "rollout-9")
    assert exc.value.reason == ReasonCode.evaluator_locked
    assert f"prod_watch ({config_id})" in str(exc.value)
    assert evaluators.locks(evaluator_id) == [f"prod_watch ({config_id})"]


def test_an_unknown_evaluator_is_an_invalid_request(evaluators: EvaluatorClient) -> None:
    with pytest.raises(PermanentError) as exc:
        evaluators.update("nobody-abcdefghij", {"description": "x"}, "r")
    assert exc.value.reason == ReasonCode.invalid_request
    assert str(exc.value) == "Evaluator nobody-abcdefghij not found"


def test_update_failed_is_seen_through_get(
    emulator: EmulatorServer, evaluators: EvaluatorClient
) -> None:
    evaluator_id = create(emulator, tags={"emulator:update-outcome": "UPDATE_FAILED"})
    evaluators.update(evaluator_id, {"description": "x"}, "r")
    wait_for(lambda: evaluators.get(evaluator_id)["status"] == "UPDATE_FAILED")


def test_the_control_endpoint_setting_is_honoured(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    data, control_plane = make_emulator(), make_emulator()
    both = settings(data.url, agentcore_control_endpoint_url=control_plane.url)
    EvaluatorClient.from_settings(both).get("Builtin.Helpfulness")
    assert control(control_plane.url, "stats")["calls"]["GetEvaluator"] == 1
    assert control(data.url, "stats")["calls"]["GetEvaluator"] == 0
    assert make_control_client(settings(data.url)).meta.endpoint_url == data.url
