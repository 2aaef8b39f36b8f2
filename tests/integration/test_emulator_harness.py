"""Contract tests of InvokeHarness and of batch evaluations over harness sessions: an
unmodified boto3 ``bedrock-agentcore`` client reading the event stream over HTTP.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import botocore.exceptions
import pytest
import urllib3.exceptions
from botocore.eventstream import EventStreamBuffer

from evalq_emulators.agentcore import EmulatorServer

from .test_emulator_contract import (
    control,
    http_status,
    make_client,
    start,
    wait_for,
    wait_status,
)

HARNESS = "arn:aws:bedrock-agentcore:us-east-1:123456789012:harness/support_bot-abcdefghij"
SERVICE = {"serviceNames": ["support_bot.DEFAULT"], "logGroupNames": ["/aws/agent"]}


def session(n: int) -> str:
    return f"evalq-session-{n:04d}-" + "x" * 24


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"text": text}]}]


def invoke(client: Any, session_id: str, text: str = "Where is my order?", **kw: Any) -> Any:
    return client.invoke_harness(
        harnessArn=kw.pop("harnessArn", HARNESS),
        runtimeSessionId=session_id,
        messages=ask(text),
        **kw,
    )


def events(client: Any, session_id: str, text: str = "Where is my order?", **kw: Any) -> Any:
    return list(invoke(client, session_id, text, **kw)["stream"])


def kinds(stream: list[dict[str, Any]]) -> list[str]:
    return [next(iter(event)) for event in stream]


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    return make_emulator()


@pytest.fixture
def client(emulator: EmulatorServer) -> Any:
    return make_client(emulator.url)


# --- the stream -------------------------------------------------------------------------


def test_invoke_streams_an_agent_turn(client: Any) -> None:
    response = invoke(client, session(1))
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == (
        "application/vnd.amazon.eventstream"
    )
    stream = list(response["stream"])
    assert kinds(stream)[0] == "messageStart"
    assert kinds(stream)[-1] == "metadata"
    assert {"contentBlockStart", "contentBlockDelta", "contentBlockStop"} <= set(kinds(stream))
    stops = [e["messageStop"]["stopReason"] for e in stream if "messageStop" in e]
    assert stops == ["tool_use", "tool_result", "end_turn"]
    tool = next(e["contentBlockStart"]["start"] for e in stream if "contentBlockStart" in e)
    assert tool["toolUse"]["name"] == "lookup"
    text = "".join(
        e["contentBlockDelta"]["delta"].get("text", "") for e in stream if "contentBlockDelta" in e
    )
    assert text.startswith("Turn 1:")
    assert "Where is my order?" in text
    usage = stream[-1]["metadata"]["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert stream[-1]["metadata"]["metrics"]["latencyMs"] >= 0


def test_stream_frames_decode_with_botocore(emulator: EmulatorServer) -> None:
    # The raw bytes, framed as botocore decodes them (CRCs, headers, JSON payloads).
    body = json.dumps({"messages": ask("hello")}).encode()
    url = f"{emulator.url}/harnesses/invoke?harnessArn={HARNESS}&qualifier=DEFAULT"
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", session(2))
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/vnd.amazon.eventstream"
        raw = resp.read()
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    messages = list(buffer)
    assert len(messages) > 5
    for message in messages:
        assert message.headers[":message-type"] == "event"
        assert message.headers[":content-type"] == "application/json"
        json.loads(message.payload)
    assert messages[0].headers[":event-type"] == "messageStart"
    (sess,) = control(emulator.url, "sessions")
    assert sess["qualifier"] == "DEFAULT"


def test_same_session_continues_the_conversation(emulator: EmulatorServer, client: Any) -> None:
    first = events(client, session(3), "first question")
    second = events(client, session(3), "second question", qualifier="prod")
    for stream, turn in ((first, 1), (second, 2)):
        deltas = [e["contentBlockDelta"]["delta"] for e in stream if "contentBlockDelta" in e]
        assert "".join(d.get("text", "") for d in deltas).startswith(f"Turn {turn}:")
    (sess,) = control(emulator.url, "sessions")
    assert sess["session_id"] == session(3)
    assert [i["turn"] for i in sess["invocations"]] == [1, 2]
    assert [i["outcome"] for i in sess["invocations"]] == ["completed", "completed"]
    assert [i["qualifier"] for i in sess["invocations"]] == [None, "prod"]
    stats = control(emulator.url, "stats")
    assert stats["calls"]["InvokeHarness"] == 2
    assert stats["harness"]["calls_by_session"] == {session(3): 2}
    assert stats["harness"]["sessions"] == 1
    assert stats["harness"]["by_outcome"] == {"completed": 2}


@pytest.mark.parametrize("reason", ["max_tokens", "max_iterations_exceeded"])
def test_stop_reason_directive(client: Any, reason: str) -> None:
    stream = events(client, session(4), f"long one [emulator:stop_reason={reason}]")
    assert [e["messageStop"]["stopReason"] for e in stream if "messageStop" in e][-1] == reason


def test_no_tool_rounds(client: Any) -> None:
    stream = events(client, session(5), "quick [emulator:tools=0]")
    assert "contentBlockStart" not in kinds(stream)
    assert [e["messageStop"]["stopReason"] for e in stream if "messageStop" in e] == ["end_turn"]


# --- per-call overrides --------------------------------------------------------------------

KEY_ARN = (
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:token-vault/default/"
    "apikeycredentialprovider/openai-key"
)
OVERRIDES: dict[str, Any] = {
    "model": {"openAiModelConfig": {"modelId": "gpt-5", "apiKeyArn": KEY_ARN, "temperature": 0.2}},
    "systemPrompt": [{"text": "Be brief."}],
    "tools": [
        {
            "type": "inline_function",
            "name": "find_order",
            "config": {"inlineFunction": {"description": "Finds an order", "inputSchema": {}}},
        }
    ],
    "skills": [
        {"git": {"url": "https://github.com/org/skills", "path": "refunds"}},
        {"awsSkills": {"paths": ["core-skills/*"]}},
    ],
    "allowedTools": ["find_order"],
    "maxIterations": 4,
    "maxTokens": 500,
    "timeoutSeconds": 60,
    "actorId": "customer-7",
    "runtimeUserId": "user-7",
}


def stops(stream: list[dict[str, Any]]) -> list[str]:
    return [e["messageStop"]["stopReason"] for e in stream if "messageStop" in e]


def answer(stream: list[dict[str, Any]]) -> str:
    deltas = [e["contentBlockDelta"]["delta"] for e in stream if "contentBlockDelta" in e]
    return "".join(d.get("text", "") for d in deltas)


def test_overrides_arrive_and_are_kept_with_the_invocation(
    emulator: EmulatorServer, client: Any
) -> None:
    stream = events(client, session(40), **OVERRIDES)
    assert stops(stream) == ["tool_use", "tool_result", "end_turn"]
    tool = next(e["contentBlockStart"]["start"] for e in stream if "contentBlockStart" in e)
    assert tool["toolUse"]["name"] == "find_order"
    assert answer(stream).startswith("Turn 1 (gpt-5):")
    events(client, session(40), "and now?")
    (sess,) = control(emulator.url, "sessions")
    first, second = sess["invocations"]
    assert first["overrides"] == OVERRIDES  # runtimeUserId came as its header
    assert second["overrides"] == {}


@pytest.mark.parametrize(
    ("overrides", "stop", "tool_rounds"),
    [
        ({"maxIterations": 1}, "max_iterations_exceeded", 0),
        ({"maxIterations": 2}, "end_turn", 1),
        ({"maxTokens": 3}, "max_tokens", 1),
        ({"timeoutSeconds": 1}, "timeout_exceeded", 1),
        ({"allowedTools": ["something_else"]}, "end_turn", 0),
        ({"allowedTools": ["*"]}, "end_turn", 1),
    ],
)
def test_overrides_bound_the_agent_loop(
    client: Any, overrides: dict[str, Any], stop: str, tool_rounds: int
) -> None:
    stream = events(client, session(41), "[emulator:seconds=3]", **overrides)
    assert stops(stream)[-1] == stop
    assert stops(stream).count("tool_use") == tool_rounds
    if "maxTokens" in overrides:
        assert len(answer(stream).split(" ")) == 3


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"skills": [{"git": {"url": "http://github.com/org/skills"}}]}, "skills.1.git.url"),
        ({"skills": [{"git": {"url": "https://me@github.com/org/s"}}]}, "skills.1.git.url"),
        ({"skills": [{"awsSkills": {"paths": ["core/[ab]"]}}]}, "skills.1.awsSkills.paths.1"),
        ({"skills": [{"path": "a", "awsSkills": {}}]}, "skills.1"),
        ({"allowedTools": ["a/b/c"]}, "allowedTools.1"),
        (
            {"model": {"bedrockModelConfig": {"modelId": "m", "temperature": 2.5}}},
            "model.bedrockModelConfig.temperature",
        ),
        (
            {"model": {"geminiModelConfig": {"modelId": "m", "apiKeyArn": KEY_ARN, "topK": 501}}},
            "model.geminiModelConfig.topK",
        ),
        ({"tools": [{"type": "lambda"}]}, "tools.1.type"),
    ],
)
def test_overrides_are_validated_as_the_model_says(
    emulator: EmulatorServer, bad: dict[str, Any], field: str
) -> None:
    client = make_client(emulator.url, parameter_validation=False)
    with pytest.raises(client.exceptions.ValidationException) as exc:
        events(client, session(42), **bad)
    names = [f["name"] for f in exc.value.response["fieldList"]]
    assert field in names
    assert control(emulator.url, "sessions") == []  # refused before any session existed


# --- broken streams and in-stream errors ---------------------------------------------------


def test_fault_breaks_the_stream_midway(emulator: EmulatorServer, client: Any) -> None:
    control(emulator.url, "faults", {"stream_break": 1.0})
    seen: list[str] = []
    stream = invoke(client, session(6))["stream"]
    with pytest.raises(urllib3.exceptions.ProtocolError):
        seen.extend(next(iter(event)) for event in stream)
    assert seen[0] == "messageStart"
    assert "metadata" not in seen
    (sess,) = control(emulator.url, "sessions")
    assert sess["invocations"][0]["outcome"] == "broken"
    assert sess["invocations"][0]["stop_reason"] is None
    stats = control(emulator.url, "stats")
    assert stats["faults"]["stream_break"] == 1
    assert stats["harness"]["by_outcome"] == {"broken": 1}
    control(emulator.url, "faults", {})
    assert kinds(events(client, session(7)))[-1] == "metadata"


@pytest.mark.parametrize(
    "name", ["runtimeClientError", "internalServerException", "validationException"]
)
def test_fault_in_stream_error(emulator: EmulatorServer, client: Any, name: str) -> None:
    control(emulator.url, "faults", {"stream_errors": {name: 1.0}})
    seen: list[str] = []
    stream = invoke(client, session(8))["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError) as exc:
        seen.extend(next(iter(event)) for event in stream)
    assert exc.value.response["Error"]["Code"] == name
    assert session(8) in exc.value.response["Error"]["Message"]
    assert seen
    assert "metadata" not in seen
    (sess,) = control(emulator.url, "sessions")
    assert sess["invocations"][0]["outcome"] == f"error:{name}"
    assert control(emulator.url, "stats")["faults"]["stream_errors"] == 1


def test_break_once_directive_breaks_only_the_first_attempt(client: Any) -> None:
    prompt = "flaky item [emulator:break=once]"
    with pytest.raises(urllib3.exceptions.ProtocolError):
        events(client, session(9), prompt)
    assert kinds(events(client, session(10), prompt))[-1] == "metadata"


def test_error_directive(client: Any) -> None:
    with pytest.raises(botocore.exceptions.EventStreamError) as exc:
        events(client, session(11), "doomed [emulator:error=runtimeClientError]")
    assert exc.value.response["Error"]["Code"] == "runtimeClientError"


def test_client_leaving_midway_is_recorded(make_emulator: Callable[..., EmulatorServer]) -> None:
    # 1000 emulated s at 1000x: the stream lasts a real second; the client leaves first.
    emulator = make_emulator(harness_seconds=1000.0)
    response = invoke(make_client(emulator.url), session(12))
    stream = iter(response["stream"])
    assert next(stream) == {"messageStart": {"role": "assistant"}}
    response["stream"].close()

    def ended() -> Any:
        (sess,) = control(emulator.url, "sessions")
        return sess["invocations"][0]["outcome"]

    assert wait_for(ended, timeout=10) == "client_gone"


def test_errors_before_the_stream(emulator: EmulatorServer, client: Any) -> None:
    control(emulator.url, "faults", {"server_error": 1.0, "operations": ["InvokeHarness"]})
    with pytest.raises(client.exceptions.InternalServerException) as exc:
        invoke(client, session(13))
    assert http_status(exc.value) == 500
    control(emulator.url, "faults", {})
    assert control(emulator.url, "sessions") == []


# --- input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:bedrock-agentcore:us-east-1:999999999999:harness/support_bot-abcdefghij",
        "arn:aws:bedrock-agentcore:eu-west-1:123456789012:harness/support_bot-abcdefghij",
    ],
)
def test_harness_of_another_account_or_region_is_not_found(client: Any, arn: str) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        invoke(client, session(14), harnessArn=arn)
    assert http_status(exc.value) == 404
    assert arn in exc.value.response["Error"]["Message"]


def test_malformed_harness_arn_is_validation_error(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException) as exc:
        invoke(client, session(15), harnessArn="arn:aws:bedrock-agentcore:::harness/nope")
    assert "harnessArn" in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize("length", [32, 101])
def test_session_id_length_is_enforced_by_the_server(emulator: EmulatorServer, length: int) -> None:
    body = json.dumps({"messages": ask("hi")}).encode()
    req = urllib.request.Request(
        f"{emulator.url}/harnesses/invoke?harnessArn={HARNESS}", data=body, method="POST"
    )
    req.add_header("X-Amzn-Bedrock-AgentCore-Runtime-Session-Id", "s" * length)
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 400
    assert exc.value.headers["x-amzn-ErrorType"] == "ValidationException"
    assert "runtimeSessionId" in json.loads(exc.value.read())["message"]


def test_message_shapes_are_validated(emulator: EmulatorServer) -> None:
    client = make_client(emulator.url, parameter_validation=False)
    bad = [{"role": "robot", "content": [{"text": "hi", "toolUse": {}}]}]
    with pytest.raises(client.exceptions.ValidationException) as exc:
        client.invoke_harness(harnessArn=HARNESS, runtimeSessionId=session(16), messages=bad)
    message = exc.value.response["Error"]["Message"]
    assert "messages.1.role" in message
    assert "messages.1.content.1" in message


# --- batch evaluations over harness sessions ------------------------------------------------


def test_batch_evaluation_counts_the_named_sessions_that_exist(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = make_emulator(named_sessions="harness")
    client = make_client(emulator.url)
    ran = [session(20 + i) for i in range(4)]
    for sid in ran:
        events(client, sid)
    named = [*ran, session(99)]  # one session no harness ever produced
    source = {"cloudWatchLogs": {**SERVICE, "filterConfig": {"sessionIds": named}}}
    metadata = {
        "sessionMetadata": [
            {
                "sessionId": sid,
                "testScenarioId": f"scenario-{i}",
                "groundTruth": {"inline": {"assertions": [{"text": "mentions the order"}]}},
            }
            for i, sid in enumerate(ran)
        ]
    }
    job = start(client, "over_harness", dataSourceConfig=source, evaluationMetadata=metadata)
    final = wait_status(client, job["batchEvaluationId"], "COMPLETED")
    assert final["evaluationResults"]["totalNumberOfSessions"] == 4
    (view,) = control(emulator.url, "jobs")
    assert view["sessions_named"] == named
    assert view["sessions_found"] == ran
    assert view["test_scenario_ids"] == {sid: f"scenario-{i}" for i, sid in enumerate(ran)}


def test_sessions_are_found_only_after_ingestion(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    # 300 emulated s of ingestion = 0.3 real s at 1000x.
    emulator = make_emulator(ingestion_seconds=300.0)
    client = make_client(emulator.url)
    events(client, session(30))
    source = {"cloudWatchLogs": {**SERVICE, "filterConfig": {"sessionIds": [session(30)]}}}
    early = start(client, "too_early", dataSourceConfig=source)["batchEvaluationId"]
    assert (
        wait_status(client, early, "COMPLETED")["evaluationResults"]["totalNumberOfSessions"] == 0
    )

    def found_later() -> bool:
        name = f"later_{len(control(emulator.url, 'jobs'))}"
        job_id = start(client, name, dataSourceConfig=source)["batchEvaluationId"]
        final = wait_status(client, job_id, "COMPLETED")
        return bool(final["evaluationResults"]["totalNumberOfSessions"] == 1)

    assert wait_for(found_later, timeout=10)


# --- ListBatchEvaluations carries what the model's summary carries ---------------------------


def test_list_items_carry_every_summary_member_get_carries(
    emulator: EmulatorServer, client: Any
) -> None:
    for sid in (session(40), session(41)):
        events(client, sid)
    source = {
        "cloudWatchLogs": {**SERVICE, "filterConfig": {"sessionIds": [session(40), session(41)]}}
    }
    evaluators = [{"evaluatorId": "Builtin.Helpfulness"}]
    done = start(
        client,
        "listed_done",
        dataSourceConfig=source,
        evaluators=evaluators,
        insights=[{"insightId": "Builtin.Summary"}],
        description="two sessions",
        kmsKeyArn="arn:aws:kms:us-east-1:123456789012:key/" + "a" * 36,
        tags={"emulator:outcome": "FAILED"},
    )["batchEvaluationId"]
    wait_status(client, done, "FAILED")
    running = start(client, "listed_running", tags={"emulator:duration": "1000000"})
    wait_status(client, running["batchEvaluationId"], "IN_PROGRESS")
    summary_shape = client.meta.service_model.shape_for("BatchEvaluationSummary")
    items = {s["batchEvaluationId"]: s for s in client.list_batch_evaluations()["batchEvaluations"]}
    for job_id in (done, running["batchEvaluationId"]):
        got = client.get_batch_evaluation(batchEvaluationId=job_id)
        item = items[job_id]
        assert set(item) <= set(summary_shape.members)
        expected = {m for m in summary_shape.members if m in got}
        assert set(item) == expected, job_id
        for member in expected - {"evaluationResults", "updatedAt"}:
            assert item[member] == got[member], member
        assert item["updatedAt"] <= got["updatedAt"]
    failed = items[done]
    assert failed["status"] == "FAILED"
    assert failed["evaluationResults"]["totalNumberOfSessions"] == 2
    assert (
        failed["evaluationResults"]["numberOfSessionsCompleted"]
        + failed["evaluationResults"]["numberOfSessionsFailed"]
        == 2
    )
    assert failed["evaluationResults"]["evaluatorSummaries"][0]["evaluatorId"] == (
        "Builtin.Helpfulness"
    )
    assert failed["errorDetails"]
    assert failed["kmsKeyArn"].startswith("arn:aws:kms:")
    assert failed["insights"] == [{"insightId": "Builtin.Summary"}]
    busy = items[running["batchEvaluationId"]]["evaluationResults"]
    assert busy["numberOfSessionsInProgress"] + busy["numberOfSessionsCompleted"] == 10
