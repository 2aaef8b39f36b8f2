"""``backend: "aymara"``: the evaluation block, its errors and what is sent to the SDK."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from api_contracts import AymaraEvaluation, EvaluationRequest, ReasonCode
from api_contracts.errors import reason_for_validation_error
from api_contracts.examples import sample_aymara_request, sample_request

from .helpers import assert_rejected, assert_valid


def with_evaluation(**members: Any) -> dict[str, Any]:
    request = sample_aymara_request()
    request["evaluation"].update(members)
    return request


def with_response(**members: Any) -> dict[str, Any]:
    request = sample_aymara_request()
    request["evaluation"]["responses"][0].update(members)
    return request


def test_the_sample_is_valid_and_typed_for_aymara() -> None:
    request = EvaluationRequest.model_validate(sample_aymara_request())
    assert isinstance(request.evaluation, AymaraEvaluation)
    assert request.evaluation_of(AymaraEvaluation).eval_uuid.startswith("test.")


@pytest.mark.parametrize(
    "members",
    [
        {"name": "nightly", "ai_description": "bot", "workspace_uuid": "w", "is_sandbox": True},
        {"eval_run_examples": [{"prompt": "p", "response": "r", "type": "fail"}]},
        {"eval_run_examples": None, "name": None},
        {"responses": []},
    ],
)
def test_optional_members(members: dict[str, Any]) -> None:
    assert_valid(EvaluationRequest, with_evaluation(**members))


@pytest.mark.parametrize(
    "members",
    [
        {"content": {"file_uuid": "f", "remote_file_path": "s3://b/k"}},
        {"content": None, "ai_refused": True, "exclude_from_scoring": False},
        {"content_type": "image", "thread_uuid": "t", "turn_number": 2, "continue_thread": True},
    ],
)
def test_response_members_as_the_sdk_spells_them(members: dict[str, Any]) -> None:
    assert_valid(EvaluationRequest, with_response(**members))


@pytest.mark.parametrize(
    ("members", "path"),
    [
        ({"eval_uuid": ""}, "evaluation.eval_uuid"),
        ({"eval_uuid": None}, "evaluation.eval_uuid"),
        ({"responses": None}, "evaluation.responses"),
        ({"is_sandbox": "true"}, "evaluation.is_sandbox"),
        ({"eval_run_uuid": "u"}, "evaluation.eval_run_uuid"),
        ({"continue_thread": True}, "evaluation.continue_thread"),
        ({"eval_run_examples": [{"prompt": "p", "response": "r", "type": "meh"}]},
         "evaluation.eval_run_examples.0.type"),
    ],
)  # fmt: skip
def test_rejected_members_are_named(members: dict[str, Any], path: str) -> None:
    found = assert_rejected(EvaluationRequest, with_evaluation(**members), path)
    assert "dataSourceConfig" not in found  # judged as Aymara's, not AgentCore's


@pytest.mark.parametrize(
    ("members", "path"),
    [
        ({"prompt_uuid": ""}, "evaluation.responses.0.prompt_uuid"),
        ({"content_type": "audio"}, "evaluation.responses.0.content_type"),
        ({"turn_number": "2"}, "evaluation.responses.0.turn_number"),
        ({"ai_refused": 1}, "evaluation.responses.0.ai_refused"),
        ({"score": 1}, "evaluation.responses.0.score"),
    ],
)
def test_rejected_response_members_are_named(members: dict[str, Any], path: str) -> None:
    assert_rejected(EvaluationRequest, with_response(**members), path, within=True)


def test_a_response_without_prompt_uuid_is_rejected() -> None:
    request = sample_aymara_request()
    del request["evaluation"]["responses"][0]["prompt_uuid"]
    assert_rejected(EvaluationRequest, request, "evaluation.responses.0.prompt_uuid")


def test_an_evaluation_of_another_backend_is_invalid_request() -> None:
    agentcore_block = sample_request()["evaluation"]
    request = sample_aymara_request(evaluation=agentcore_block)
    with pytest.raises(ValidationError) as caught:
        EvaluationRequest.model_validate(request)
    assert reason_for_validation_error(caught.value) is ReasonCode.invalid_request
    aymara_block = sample_aymara_request()["evaluation"]
    assert_rejected(EvaluationRequest, sample_request(evaluation=aymara_block),
                    "evaluation.dataSourceConfig")  # fmt: skip


def test_create_params_leave_out_absent_members() -> None:
    request = EvaluationRequest.model_validate(with_evaluation(name=None, is_sandbox=False))
    params = request.evaluation_of(AymaraEvaluation).create_params()
    assert params == {
        "eval_uuid": sample_aymara_request()["evaluation"]["eval_uuid"],
        "responses": sample_aymara_request()["evaluation"]["responses"],
        "ai_description": "demo assistant",
        "is_sandbox": False,
    }


def test_null_members_hash_as_absent_ones() -> None:
    plain = EvaluationRequest.model_validate(sample_aymara_request())
    nulls = EvaluationRequest.model_validate(with_evaluation(name=None, workspace_uuid=None))
    changed = EvaluationRequest.model_validate(with_evaluation(name="n"))
    assert (
        plain.evaluation_of(AymaraEvaluation).create_params()
        == nulls.evaluation_of(AymaraEvaluation).create_params()
    )
    assert changed.payload_hash() != plain.payload_hash()


def test_evaluation_of_refuses_the_wrong_backend() -> None:
    request = EvaluationRequest.model_validate(copy.deepcopy(sample_request()))
    with pytest.raises(TypeError, match="agentcore"):
        request.evaluation_of(AymaraEvaluation)
