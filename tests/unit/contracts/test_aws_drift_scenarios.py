"""ScenarioRun against the botocore models: InvokeHarness's messages, harnessArn and
qualifier; StartBatchEvaluation's groundTruth; and the rules of a request with scenarios."""

from __future__ import annotations

import functools
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator

from api_contracts import EvaluationRequest, ScenarioRun
from api_contracts.examples import sample_request
from api_contracts.scenarios import HarnessMessage

from . import drift
from .helpers import assert_rejected, assert_valid

HARNESS = "arn:aws:bedrock-agentcore:us-east-1:123456789012:harness/support_bot-abcdefghij"
CW = "evaluation.dataSourceConfig.cloudWatchLogs"


@functools.cache
def invoke_shape() -> Any:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    return client.meta.service_model.operation_model("InvokeHarness").input_shape


@functools.cache
def start_shape() -> Any:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    return client.meta.service_model.operation_model("StartBatchEvaluation").input_shape


MESSAGE_VIEW = drift.SchemaView(HarnessMessage.model_json_schema())
MESSAGE_NODES = list(drift.walk(invoke_shape().members["messages"].member))
RUN_SCHEMA = ScenarioRun.model_json_schema()


@pytest.mark.parametrize("node", MESSAGE_NODES, ids=[n.id for n in MESSAGE_NODES])
def test_harness_message_matches_the_aws_shape(node: drift.Node) -> None:
    assert drift.problems(MESSAGE_VIEW, node) == []


def test_harness_arn_and_qualifier_are_invoke_harness_s() -> None:
    view = drift.SchemaView(RUN_SCHEMA)
    for ours, theirs in (("harnessArn", "harnessArn"), ("qualifier", "qualifier")):
        node = drift.Node((ours,), invoke_shape().members[theirs])
        assert drift.problems(view, node) == []


def test_ground_truth_is_session_metadata_s() -> None:
    shape = start_shape().members["evaluationMetadata"].members["sessionMetadata"].member
    view = drift.SchemaView(RUN_SCHEMA)
    root = ("items", "[]", "ground_truth")
    for node in drift.walk(shape.members["groundTruth"]):
        assert drift.problems(view, drift.Node(root + node.path, node.shape)) == []


def scenario_request(**scenarios: Any) -> dict[str, Any]:
    request = sample_request()
    request["scenarios"] = {"harnessArn": HARNESS, "items": [{"prompt": "hi"}], **scenarios}
    return request


def test_a_scenario_request_and_its_defaults() -> None:
    parsed = EvaluationRequest.model_validate(scenario_request())
    assert parsed.scenarios is not None
    assert parsed.scenarios.ingestion_delay_seconds == 180
    assert parsed.scenarios.qualifier is None
    assert '"scenarios"' in parsed.canonical_json()


@pytest.mark.parametrize(
    ("items", "path"),
    [
        ([], "scenarios.items"),
        ([{"prompt": "p"}] * 501, "scenarios.items"),
        ([{}], "scenarios.items.0"),
        (
            [{"prompt": "p", "messages": [{"role": "user", "content": [{"text": "p"}]}]}],
            "scenarios.items.0",
        ),
        ([{"prompt": ""}], "scenarios.items.0.prompt"),
        ([{"messages": []}], "scenarios.items.0.messages"),
        ([{"messages": [{"role": "system", "content": []}]}], "scenarios.items.0.messages.0.role"),
        (
            [{"messages": [{"role": "user", "content": [{}]}]}],
            "scenarios.items.0.messages.0.content.0",
        ),
        (
            [{"messages": [{"role": "user", "content": [{"text": ""}]}]}],
            "scenarios.items.0.messages.0.content.0.text",
        ),
        (
            [{"prompt": "p", "ground_truth": {"inline": {"assertions": []}}}],
            "scenarios.items.0.ground_truth.inline.assertions",
        ),
        ([{"prompt": "p", "clientToken": "x"}], "scenarios.items.0.clientToken"),
    ],
)
def test_bad_items_are_refused(items: list[Any], path: str) -> None:
    assert_rejected(EvaluationRequest, scenario_request(items=items), path)


@pytest.mark.parametrize("bad", [None, float("inf"), {"a": [float("nan")]}])
def test_tool_documents_are_json_values(bad: Any) -> None:
    message = {"role": "assistant", "content": [{"toolUse": {"name": "t", "toolUseId": "t"}}]}
    message["content"][0]["toolUse"]["input"] = bad
    path = "scenarios.items.0.messages.0.content.0.toolUse.input"
    assert_rejected(EvaluationRequest, scenario_request(items=[{"messages": [message]}]), path)


def test_500_items_are_accepted() -> None:
    assert_valid(EvaluationRequest, scenario_request(items=[{"prompt": "p"}] * 500))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("harnessArn", "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/x-abcdefghij"),
        ("harnessArn", "arn:aws:bedrock-agentcore:us-east-1:123:harness/support_bot-abcdefghij"),
        ("qualifier", "1prod"),
        ("qualifier", "p" * 49),
        ("ingestion_delay_seconds", -1),
        ("ingestion_delay_seconds", 6 * 3600 + 1),
        ("ingestion_delay_seconds", "180"),
    ],
)
def test_bad_run_fields_are_refused(field: str, value: Any) -> None:
    assert_rejected(EvaluationRequest, scenario_request(**{field: value}), f"scenarios.{field}")


def _with_source(source: dict[str, Any], **evaluation: Any) -> dict[str, Any]:
    request = scenario_request()
    request["evaluation"]["dataSourceConfig"] = source
    request["evaluation"].update(evaluation)
    return request


@pytest.mark.parametrize(
    ("request_data", "words"),
    [
        (
            _with_source(
                {
                    "onlineEvaluationConfigSource": {
                        "onlineEvaluationConfigArn": "arn:aws:bedrock-agentcore:us-east-1:"
                        "123456789012:online-evaluation-config/cfg-abcdefghij"
                    }
                }
            ),
            "must be cloudWatchLogs",
        ),
        (_with_source({"cloudWatchLogs": {"serviceNames": ["s"]}}), "logGroupNames"),
        (
            _with_source(
                {
                    "cloudWatchLogs": {
                        "serviceNames": ["s"],
                        "logGroupNames": ["/g"],
                        "filterConfig": {"sessionIds": ["mine"]},
                    }
                }
            ),
            "sessionIds",
        ),
        (
            _with_source(
                {
                    "cloudWatchLogs": {
                        "serviceNames": ["s"],
                        "logGroupNames": ["/g"],
                        "filterConfig": {
                            "sessionTraceIds": [{"sessionId": "s", "traceIds": ["a" * 32]}]
                        },
                    }
                }
            ),
            "sessionTraceIds",
        ),
        (
            _with_source(
                {"cloudWatchLogs": {"serviceNames": ["s"], "logGroupNames": ["/g"]}},
                evaluationMetadata={"sessionMetadata": [{"sessionId": "s"}]},
            ),
            "evaluationMetadata",
        ),
    ],
    ids=["online source", "no log groups", "session ids", "session trace ids", "metadata"],
)
def test_with_scenarios_evalq_names_the_sessions(request_data: dict[str, Any], words: str) -> None:
    found = assert_rejected(EvaluationRequest, request_data, "(root)")
    assert words in found


def test_a_time_range_is_still_allowed() -> None:
    request = _with_source(
        {
            "cloudWatchLogs": {
                "serviceNames": ["s"],
                "logGroupNames": ["/g"],
                "filterConfig": {"timeRange": {"startTime": "2026-01-01T00:00:00Z"}},
            }
        }
    )
    assert_valid(EvaluationRequest, request)


def test_items_become_what_boto3_sends() -> None:
    item = {
        "messages": [
            {"role": "user", "content": [{"text": "Find order 7"}]},
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"name": "lookup", "toolUseId": "t1", "input": {"order": 7}}},
                    {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"status": "late"}}]}}
                ],
            },
        ],
        "scenario_id": "late-order",
        "ground_truth": {"inline": {"assertions": [{"text": "apologises"}]}},
    }
    run = ScenarioRun.model_validate({"harnessArn": HARNESS, "items": [item]})
    messages = run.items[0].harness_messages()
    assert messages[2]["content"][0]["toolResult"]["content"] == [{"json": {"status": "late"}}]
    assert messages[1]["content"][1]["reasoningContent"]["redactedContent"] == b"redacted"
    report = ParamValidator().validate(
        {"harnessArn": HARNESS, "runtimeSessionId": "s" * 40, "messages": messages},
        invoke_shape(),
    )
    assert not report.has_errors(), report.generate_report()
    entry = run.items[0].session_metadata("s" * 40)
    assert entry == {
        "sessionId": "s" * 40,
        "testScenarioId": "late-order",
        "groundTruth": {"inline": {"assertions": [{"text": "apologises"}]}},
    }
    prompt_only = ScenarioRun.model_validate({"harnessArn": HARNESS, "items": [{"prompt": "hi"}]})
    assert prompt_only.items[0].harness_messages() == [
        {"role": "user", "content": [{"text": "hi"}]}
    ]
    assert prompt_only.items[0].session_metadata("x") == {"sessionId": "x"}
