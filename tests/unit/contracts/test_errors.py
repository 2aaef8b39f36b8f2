"""describe_validation_error and reason_for_validation_error."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api_contracts import (
    EvaluationRequest,
    ReasonCode,
    describe_validation_error,
    reason_for_validation_error,
)
from api_contracts.examples import sample_request

from .helpers import request_with


def _error(data: Any, *, as_json: bool = False) -> ValidationError:
    validate = (
        EvaluationRequest.model_validate_json if as_json else EvaluationRequest.model_validate
    )
    with pytest.raises(ValidationError) as caught:
        validate(data)
    return caught.value


def test_one_line_per_problem_naming_the_dotted_path() -> None:
    data = request_with("evaluation.evaluators", [{"evaluatorId": "Builtin.Helpfulness"}] * 11)
    data["priority"] = 10
    text = describe_validation_error(_error(data))
    assert text.splitlines() == [
        "evaluation.evaluators: List should have at most 10 items after validation, not 11",
        "priority: Input should be less than or equal to 9",
    ]


def test_list_indices_and_map_keys_are_part_of_the_path() -> None:
    data = request_with(
        "evaluation.evaluators", [{"evaluatorId": "Builtin.A"}, {"evaluatorId": ""}]
    )
    data["correlation"] = {"bad key": "v"}
    lines = describe_validation_error(_error(data)).splitlines()
    assert lines[0].startswith("evaluation.evaluators.1.evaluatorId: String should have at least 1")
    assert lines[-1].startswith("correlation.bad key.[key]: String should match pattern")


def test_input_values_are_not_echoed() -> None:
    secret = "s3cr3t-value-" * 3
    text = describe_validation_error(_error(sample_request(request_id=secret + " ")))
    assert secret not in text
    assert text.startswith("request_id: String should match pattern")


def test_problems_at_the_root() -> None:
    assert describe_validation_error(_error("not a dict")).startswith("(root): Input should be")
    assert describe_validation_error(_error("{", as_json=True)).startswith("(root): Invalid JSON")


def test_reason_is_unknown_backend_when_backend_is_among_the_problems() -> None:
    only_backend = _error(sample_request(backend="vertex"))
    with_others = _error(sample_request(backend="vertex", priority=99))
    assert reason_for_validation_error(only_backend) is ReasonCode.unknown_backend
    assert reason_for_validation_error(with_others) is ReasonCode.unknown_backend


@pytest.mark.parametrize(
    "data",
    [sample_request(priority=99), "junk", sample_request(evaluation={}), {"backend_x": 1}],
)
def test_reason_is_invalid_request_otherwise(data: Any) -> None:
    assert reason_for_validation_error(_error(data)) is ReasonCode.invalid_request


def test_unprintable_keys_cannot_break_the_one_line_per_problem_rule() -> None:
    data: dict[str, Any] = {**sample_request(), "x\ny": 1, "\r": 2}
    text = describe_validation_error(_error(data))
    assert text.splitlines() == [
        "x\\ny: Extra inputs are not permitted",
        "\\r: Extra inputs are not permitted",
    ]
