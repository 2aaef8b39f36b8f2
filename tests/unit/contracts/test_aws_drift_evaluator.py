"""EvaluatorUpdate against the botocore model of UpdateEvaluator (bedrock-agentcore-control).

When boto3's model changes (a new member, another limit, pattern or enum), one of these
fails. Constraints are checked in the JSON Schema (what other languages see) and by
validating values at and past the limits (what evalq enforces).
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator
from pydantic import ValidationError

from api_contracts import EvaluatorUpdateRequest, describe_validation_error
from api_contracts.evaluator_update import EvaluatorUpdate

from . import drift

#: Members of the AWS input that are not in ``update``: the token evalq derives from the
#: request_id, and the evaluator id the request names at its top level.
NOT_IN_UPDATE = frozenset({"clientToken", "evaluatorId"})


@functools.cache
def update_shape() -> Any:
    client = boto3.client("bedrock-agentcore-control", region_name="us-east-1")
    return client.meta.service_model.operation_model("UpdateEvaluator").input_shape


VIEW = drift.SchemaView(EvaluatorUpdate.model_json_schema())
NODES = list(drift.walk(update_shape(), NOT_IN_UPDATE))

JUDGE: dict[str, Any] = {
    "llmAsAJudge": {
        "instructions": "Score the answer against {assertions}.",
        "ratingScale": {"numerical": [{"definition": "Good", "value": 1.0, "label": "good"}]},
        "modelConfig": {"bedrockEvaluatorModelConfig": {"modelId": "judge-v2"}},
    }
}


def request(update: dict[str, Any], evaluator_id: str = "judge-abcdefghij") -> dict[str, Any]:
    return {
        "request_id": "rollout-1",
        "producer": "quality",
        "evaluator_id": evaluator_id,
        "update": update,
    }


def problems_of(data: dict[str, Any]) -> str | None:
    try:
        EvaluatorUpdateRequest.model_validate(data)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def rejected_at(data: dict[str, Any], dotted: str) -> str:
    found = problems_of(data)
    assert found is not None, f"expected a problem at {dotted}"
    assert any(line.startswith(f"{dotted}: ") for line in found.splitlines()), found
    return found


def test_walk_covers_the_whole_update_shape() -> None:
    top = set(update_shape().members) - NOT_IN_UPDATE
    assert (
        {n.path[0] for n in NODES if n.path}
        == top
        == {
            "description",
            "evaluatorConfig",
            "level",
            "kmsKeyArn",
        }
    )
    assert len(NODES) > 40


@pytest.mark.parametrize("node", NODES, ids=[n.id for n in NODES])
def test_json_schema_matches_the_aws_shape(node: drift.Node) -> None:
    assert drift.problems(VIEW, node, NOT_IN_UPDATE) == []


def test_evaluator_id_pattern_is_the_custom_branch_of_the_aws_pattern() -> None:
    aws = update_shape().members["evaluatorId"].metadata["pattern"]
    custom = aws.split("|")[-1].rstrip(")")
    schema = EvaluatorUpdateRequest.model_json_schema()["properties"]["evaluator_id"]
    assert schema["pattern"] == f"^(?:{custom})$"
    assert schema["maxLength"] == update_shape().members["evaluatorId"].metadata["max"]


# --- behaviour ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "evaluator_id", ["Builtin.Helpfulness", "Builtin.GoalSuccessRate", "ThirdParty.lib.metric"]
)
def test_managed_evaluators_are_refused(evaluator_id: str) -> None:
    found = rejected_at(request({"description": "x"}, evaluator_id), "evaluator_id")
    assert "cannot be updated" in found


@pytest.mark.parametrize("evaluator_id", ["1judge-abcdefghij", "judge", "judge-abc", ""])
def test_malformed_evaluator_ids_are_refused(evaluator_id: str) -> None:
    rejected_at(request({"description": "x"}, evaluator_id), "evaluator_id")


def test_an_empty_update_is_refused() -> None:
    assert "at least one" in rejected_at(request({}), "update")


def test_client_token_and_evaluator_id_are_not_update_members() -> None:
    rejected_at(request({"description": "x", "clientToken": "t" * 40}), "update.clientToken")
    rejected_at(request({"description": "x", "evaluatorId": "a-abcdefghij"}), "update.evaluatorId")


CASES: list[tuple[str, Any, Any]] = [
    ("description", "d" * 200, "d" * 201),
    ("description", "d", ""),
    ("level", "TOOL_CALL", "tool_call"),
    ("evaluatorConfig.llmAsAJudge.ratingScale.numerical.0.value", 0, -0.5),
    ("evaluatorConfig.llmAsAJudge.ratingScale.numerical.0.label", "l" * 100, "l" * 101),
    (
        "evaluatorConfig.llmAsAJudge.modelConfig.bedrockEvaluatorModelConfig.inferenceConfig",
        {"temperature": 1},
        {"temperature": 1.01},
    ),
    (
        "evaluatorConfig.llmAsAJudge.modelConfig.bedrockEvaluatorModelConfig.inferenceConfig",
        {"maxTokens": 1},
        {"maxTokens": 0},
    ),
    (
        "evaluatorConfig.llmAsAJudge.modelConfig.bedrockEvaluatorModelConfig.inferenceConfig",
        {"stopSequences": ["x"] * 2500},
        {"stopSequences": ["x"] * 2501},
    ),
    (
        "evaluatorConfig.llmAsAJudge.modelConfig.bedrockEvaluatorModelConfig.inferenceConfig",
        {"stopSequences": ["x"]},
        {"stopSequences": [""]},
    ),
]


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = dotted.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(("path", "ok", "bad"), CASES, ids=[f"{c[0]}={c[2]!r:.20}" for c in CASES])
def test_limits_at_and_past(path: str, ok: Any, bad: Any) -> None:
    base = {"description": "d", "level": "SESSION", "evaluatorConfig": JUDGE}
    assert problems_of(request(_set(base, path, ok))) is None
    found = problems_of(request(_set(base, path, bad)))
    assert found is not None
    assert f"update.{path.split('.0.')[0]}" in found


@pytest.mark.parametrize(
    "config",
    [
        {**JUDGE, "codeBased": {"lambdaConfig": {"lambdaArn": "x"}}},
        {},
        {"llmAsAJudge": {**JUDGE["llmAsAJudge"], "ratingScale": {}}},
    ],
    ids=["two members", "no member", "empty rating scale"],
)
def test_unions_take_exactly_one_member(config: dict[str, Any]) -> None:
    assert problems_of(request({"evaluatorConfig": config})) is not None


VALID_UPDATES: list[dict[str, Any]] = [
    {"description": "v2 of the judge"},
    {"level": "TRACE"},
    {"kmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-123456789012"},
    {"evaluatorConfig": JUDGE},
    {
        "evaluatorConfig": {
            "llmAsAJudge": {
                "instructions": "Judge each dimension.",
                "ratingScale": {
                    "multiDimensional": [
                        {
                            "dimensionName": "tone",
                            "dimensionInstruction": "Is it polite?",
                            "dimensionRatingScale": {
                                "categorical": [{"definition": "Polite", "label": "polite"}]
                            },
                        }
                    ]
                },
                "modelConfig": {
                    "responsesEvaluatorModelConfig": {
                        "modelId": "gpt-judge",
                        "temperature": 1.5,
                        "reasoning": {"effort": "low"},
                    }
                },
            }
        }
    },
    {
        "evaluatorConfig": {
            "codeBased": {
                "lambdaConfig": {
                    "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:judge:$LATEST",
                    "lambdaTimeoutInSeconds": 300,
                }
            }
        }
    },
    {
        "evaluatorConfig": {
            "derived": {
                "baseEvaluatorId": "Builtin.Helpfulness",
                "modelConfig": {
                    "bedrockEvaluatorModelConfig": {
                        "modelId": "m",
                        "additionalModelRequestFields": {"thinking": {"budget": 100}},
                    }
                },
            }
        }
    },
]


@pytest.mark.parametrize("update", VALID_UPDATES, ids=range(len(VALID_UPDATES)))
def test_valid_updates_are_what_boto3_sends(update: dict[str, Any]) -> None:
    parsed = EvaluatorUpdateRequest.model_validate(request(update))
    kwargs = parsed.update.to_boto3_kwargs()
    assert kwargs == update
    report = ParamValidator().validate(
        {**kwargs, "evaluatorId": parsed.evaluator_id, "clientToken": "t" * 40}, update_shape()
    )
    assert not report.has_errors(), report.generate_report()
