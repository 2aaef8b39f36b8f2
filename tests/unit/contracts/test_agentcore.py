"""AgentCoreEvaluation: the limits evalq documents, clientToken, and boto3 compatibility."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.utils import parse_timestamp
from botocore.validate import ParamValidator

from api_contracts import AgentCoreEvaluation, EvaluationRequest
from api_contracts.examples import sample_request

from . import aws_model as aws
from .helpers import assert_rejected, assert_valid, request_with

CW = "evaluation.dataSourceConfig.cloudWatchLogs"
FILTER = f"{CW}.filterConfig"
TRACE_ID = "0123456789abcdef0123456789abcdef"
SESSION_META = "evaluation.evaluationMetadata.sessionMetadata"


def _session_traces(n: int, traces: int = 1, length: int = 32) -> list[dict[str, Any]]:
    return [{"sessionId": f"s{i}", "traceIds": ["a" * length] * traces} for i in range(n)]


#: (dotted path, value at the limit, value one past it, the path the problem is reported at)
LIMITS: list[tuple[str, Any, Any, str]] = [
    (
        "evaluation.evaluators",
        [{"evaluatorId": "Builtin.Helpfulness"}] * 10,
        [{"evaluatorId": "Builtin.Helpfulness"}] * 11,
        "evaluation.evaluators",
    ),
    (
        "evaluation.insights",
        [{"insightId": "Builtin.Summary"}] * 10,
        [{"insightId": "Builtin.Summary"}] * 11,
        "evaluation.insights",
    ),
    (f"{CW}.serviceNames", ["agent"], ["agent", "other"], f"{CW}.serviceNames"),
    (f"{CW}.logGroupNames", ["/g"] * 10, ["/g"] * 11, f"{CW}.logGroupNames"),
    (f"{CW}.logGroupNamePrefixes", ["/p"] * 5, ["/p"] * 6, f"{CW}.logGroupNamePrefixes"),
    (f"{CW}.logGroupNamePrefixes", ["/p"], [], f"{CW}.logGroupNamePrefixes"),
    (f"{CW}.logGroupNamePrefixes", ["p" * 512], ["p" * 513], f"{CW}.logGroupNamePrefixes.0"),
    (f"{FILTER}.sessionIds", ["s"] * 500, ["s"] * 501, f"{FILTER}.sessionIds"),
    (
        f"{FILTER}.sessionTraceIds",
        _session_traces(500),
        _session_traces(501),
        f"{FILTER}.sessionTraceIds",
    ),
    (f"{FILTER}.sessionTraceIds", _session_traces(1), [], f"{FILTER}.sessionTraceIds"),
    (
        f"{FILTER}.sessionTraceIds",
        _session_traces(1, traces=100),
        _session_traces(1, traces=101),
        f"{FILTER}.sessionTraceIds.0.traceIds",
    ),
    (
        f"{FILTER}.sessionTraceIds",
        _session_traces(1, traces=1),
        _session_traces(1, traces=0),
        f"{FILTER}.sessionTraceIds.0.traceIds",
    ),
    (
        f"{FILTER}.sessionTraceIds",
        _session_traces(1),
        _session_traces(1, length=33),
        f"{FILTER}.sessionTraceIds.0.traceIds.0",
    ),
    (
        f"{FILTER}.sessionTraceIds",
        _session_traces(1),
        _session_traces(1, length=31),
        f"{FILTER}.sessionTraceIds.0.traceIds.0",
    ),
    (SESSION_META, [{"sessionId": "s"}] * 500, [{"sessionId": "s"}] * 501, SESSION_META),
    (
        "evaluation.tags",
        {f"k{i}": "v" for i in range(50)},
        {f"k{i}": "v" for i in range(51)},
        "evaluation.tags",
    ),
    ("evaluation.tags", {"k" * 128: "v"}, {"k" * 129: "v"}, f"evaluation.tags.{'k' * 129}.[key]"),
    ("evaluation.tags", {"k": "v" * 256}, {"k": "v" * 257}, "evaluation.tags.k"),
    (
        "evaluation.tags",
        {"team a/b:c=d+e@f-g_h.i": ""},
        {"team!": "v"},
        "evaluation.tags.team!.[key]",
    ),
    ("evaluation.tags", {"k": "v"}, {"": "v"}, "evaluation.tags..[key]"),
    ("evaluation.description", "d" * 200, "d" * 201, "evaluation.description"),
    (
        "evaluation.evaluators",
        [{"evaluatorId": "Builtin." + "a" * 103}],
        [{"evaluatorId": "Builtin." + "a" * 104}],
        "evaluation.evaluators.0.evaluatorId",
    ),
    ("evaluation.batchEvaluationName", "n" * 48, "n" * 49, "evaluation.batchEvaluationName"),
    ("evaluation.batchEvaluationName", "a1_B", "1abc", "evaluation.batchEvaluationName"),
    (
        "evaluation.kmsKeyArn",
        "arn:aws:kms:us-east-1:123456789012:key/" + "a" * 36,
        "arn:aws:kms:us-east-1:123456789012:key/" + "a" * 35,
        "evaluation.kmsKeyArn",
    ),
]


@pytest.mark.parametrize(
    ("path", "at_limit", "past_limit", "reported_at"),
    LIMITS,
    ids=[f"{case[3]}" for case in LIMITS],
)
def test_limit_accepted_and_one_past_rejected(
    path: str, at_limit: Any, past_limit: Any, reported_at: str
) -> None:
    assert_valid(EvaluationRequest, request_with(path, at_limit))
    assert_rejected(EvaluationRequest, request_with(path, past_limit), reported_at)


@pytest.mark.parametrize(
    ("evaluator_id", "valid"),
    [
        ("Builtin.Helpfulness", True),
        ("ThirdParty.vendor.metric-1", True),
        ("my_evaluator-abcdefghij", True),
        ("my_evaluator-abcdefghi", False),  # the custom suffix has 10 characters
        ("Builtin.", False),
        ("builtin.Helpfulness", False),
        ("Builtin.Helpfulness\n", False),  # patterns match the whole value
        (" Builtin.Helpfulness", False),
    ],
)
def test_evaluator_id_pattern(evaluator_id: str, valid: bool) -> None:
    request = request_with("evaluation.evaluators", [{"evaluatorId": evaluator_id}])
    if valid:
        assert_valid(EvaluationRequest, request)
    else:
        assert_rejected(EvaluationRequest, request, "evaluation.evaluators.0.evaluatorId")


def test_client_token_is_rejected_with_an_explanation() -> None:
    request = request_with("evaluation.clientToken", "a" * 40)
    lines = assert_rejected(EvaluationRequest, request, "evaluation.clientToken")
    assert "derives it from request_id" in lines


def test_unknown_member_is_rejected() -> None:
    assert_rejected(
        EvaluationRequest, request_with("evaluation.batchName", "x"), "evaluation.batchName"
    )


def test_batch_evaluation_name_is_optional_but_kept_when_given() -> None:
    without = EvaluationRequest.model_validate(sample_request())
    assert without.evaluation.batchEvaluationName is None
    assert "batchEvaluationName" not in without.evaluation.to_boto3_kwargs()
    named = EvaluationRequest.model_validate(request_with("evaluation.batchEvaluationName", "n1"))
    assert named.evaluation.to_boto3_kwargs()["batchEvaluationName"] == "n1"


def test_data_source_needs_exactly_one_source() -> None:
    online = {
        "onlineEvaluationConfigArn": aws.VALID_STRINGS["OnlineEvaluationConfigArn"],
    }
    both = request_with("evaluation.dataSourceConfig.onlineEvaluationConfigSource", online)
    lines = assert_rejected(EvaluationRequest, both, "evaluation.dataSourceConfig")
    assert "Exactly one of cloudWatchLogs, onlineEvaluationConfigSource" in lines
    neither = request_with("evaluation.dataSourceConfig", {})
    assert_rejected(EvaluationRequest, neither, "evaluation.dataSourceConfig")
    only_online = request_with(
        "evaluation.dataSourceConfig", {"onlineEvaluationConfigSource": online}
    )
    assert_valid(EvaluationRequest, only_online)


def test_null_union_member_counts_as_absent() -> None:
    request = request_with("evaluation.dataSourceConfig.onlineEvaluationConfigSource", None)
    model = EvaluationRequest.model_validate(request)
    assert (
        "onlineEvaluationConfigSource" not in model.evaluation.to_boto3_kwargs()["dataSourceConfig"]
    )


def test_empty_prompt_still_sets_the_turn_input() -> None:
    metadata = {
        "sessionMetadata": [
            {"sessionId": "s", "groundTruth": {"inline": {"turns": [{"input": {"prompt": ""}}]}}}
        ]
    }
    model = EvaluationRequest.model_validate(
        request_with("evaluation.evaluationMetadata", metadata)
    )
    kwargs = model.evaluation.to_boto3_kwargs()
    turn = kwargs["evaluationMetadata"]["sessionMetadata"][0]["groundTruth"]["inline"]["turns"][0]
    assert turn == {"input": {"prompt": ""}}


def test_output_log_group_may_be_empty_and_result_destination_is_an_enum() -> None:
    config = {"cloudWatchConfig": {"logGroupName": "", "resultDestination": "SOURCE_LOG_GROUP"}}
    assert_valid(EvaluationRequest, request_with("evaluation.outputConfig", config))
    config["cloudWatchConfig"]["resultDestination"] = "ELSEWHERE"
    assert_rejected(
        EvaluationRequest,
        request_with("evaluation.outputConfig", config),
        "evaluation.outputConfig.cloudWatchConfig.resultDestination",
    )


def test_timestamps_are_utc_and_serialised_as_iso_strings() -> None:
    time_range = {"startTime": "2025-06-01T14:00:00+02:00", "endTime": "2025-06-02T00:00:00Z"}
    model = EvaluationRequest.model_validate(request_with(f"{FILTER}.timeRange", time_range))
    cw = model.evaluation.dataSourceConfig.cloudWatchLogs
    assert cw is not None
    assert cw.filterConfig is not None
    assert cw.filterConfig.timeRange is not None
    assert cw.filterConfig.timeRange.startTime == datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert cw.filterConfig.timeRange.startTime.tzinfo is UTC
    sent = model.evaluation.to_boto3_kwargs()["dataSourceConfig"]["cloudWatchLogs"]
    assert sent["filterConfig"]["timeRange"] == {
        "startTime": "2025-06-01T12:00:00Z",
        "endTime": "2025-06-02T00:00:00Z",
    }


def test_naive_timestamp_is_rejected() -> None:
    time_range = {"startTime": "2025-06-01T14:00:00"}
    assert_rejected(
        EvaluationRequest,
        request_with(f"{FILTER}.timeRange", time_range),
        f"{FILTER}.timeRange.startTime",
    )


# --- what to_boto3_kwargs returns is what botocore and the AWS client accept -----------

FULL_EVALUATION: dict[str, Any] = {
    "batchEvaluationName": "nightly_run",
    "evaluators": [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "my_eval-abcdefghij"}],
    "insights": [{"insightId": "Builtin.Summary"}],
    "dataSourceConfig": {
        "cloudWatchLogs": {
            "serviceNames": ["agent"],
            "logGroupNames": ["/aws/agent"],
            "logGroupNamePrefixes": ["/aws/"],
            "filterConfig": {
                "sessionIds": ["s1"],
                "timeRange": {
                    "startTime": "2025-06-01T00:00:00Z",
                    "endTime": "2025-06-02T00:00:00Z",
                },
                "sessionTraceIds": [{"sessionId": "s1", "traceIds": [TRACE_ID]}],
            },
        }
    },
    "evaluationMetadata": {
        "sessionMetadata": [
            {
                "sessionId": "s1",
                "testScenarioId": "t1",
                "groundTruth": {
                    "inline": {
                        "assertions": [{"text": "cites a source"}],
                        "expectedTrajectory": {"toolNames": ["search"]},
                        "turns": [
                            {"input": {"prompt": "hi"}, "expectedResponse": {"text": "hello"}}
                        ],
                    }
                },
                "metadata": {"k": "v"},
            }
        ]
    },
    "tags": {"team": "evals"},
    "kmsKeyArn": aws.VALID_STRINGS["KmsKeyArn"],
    "description": "nightly",
    "outputConfig": {
        "cloudWatchConfig": {
            "logGroupName": "/evalq/out",
            "logStreamName": "s",
            "metricsNamespace": "Evalq",
            "resultDestination": "DEDICATED_LOG_GROUP",
        }
    },
    "datasetExecutionConfig": {
        "dataset": {"datasetId": "ds_1", "datasetVersion": "3"},
        "agentInvocation": {
            "agentCoreRuntime": {
                "agentRuntimeEndpointArn": aws.VALID_STRINGS["AgentRuntimeEndpointArn"],
                "requestTemplate": "{}",
            }
        },
    },
}


def _with_aws_only_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {"batchEvaluationName": "evalq_x", **kwargs, "clientToken": "t" * 40}


@pytest.mark.parametrize(
    "evaluation",
    [sample_request()["evaluation"], FULL_EVALUATION],
    ids=["sample", "every-member"],
)
def test_kwargs_pass_botocore_validation(evaluation: dict[str, Any]) -> None:
    kwargs = _with_aws_only_fields(AgentCoreEvaluation.model_validate(evaluation).to_boto3_kwargs())
    report = ParamValidator().validate(kwargs, aws.input_shape())
    assert not report.has_errors(), report.generate_report()


def test_every_member_sample_round_trips_unchanged() -> None:
    assert AgentCoreEvaluation.model_validate(FULL_EVALUATION).to_boto3_kwargs() == FULL_EVALUATION


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def test_real_client_serialises_the_kwargs() -> None:
    client = boto3.client(
        "bedrock-agentcore",
        region_name="us-east-1",
        endpoint_url="https://agentcore.example.invalid",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    sent: list[Any] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        body = json.dumps(
            {
                "batchEvaluationId": "nightly_run-abcdefghij",
                "batchEvaluationArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:x",
                "batchEvaluationName": "nightly_run",
                "status": "PENDING",
                "createdAt": 1748736000,
            }
        ).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Body(body))

    client.meta.events.register("before-send.bedrock-agentcore.StartBatchEvaluation", answer)
    kwargs = AgentCoreEvaluation.model_validate(FULL_EVALUATION).to_boto3_kwargs()
    response = client.start_batch_evaluation(**kwargs, clientToken="t" * 40)
    assert response["status"] == "PENDING"
    (request,) = sent
    body = json.loads(request.body)
    assert body["clientToken"] == "t" * 40
    assert body["evaluators"] == FULL_EVALUATION["evaluators"]
    time_range = body["dataSourceConfig"]["cloudWatchLogs"]["filterConfig"]["timeRange"]
    assert parse_timestamp(time_range["startTime"]) == datetime(2025, 6, 1, tzinfo=UTC)
