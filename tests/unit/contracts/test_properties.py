"""Property tests: valid requests round-trip and hash stably; junk never crashes."""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api_contracts import (
    DeadLetter,
    EvaluationOutcome,
    EvaluationRequest,
    EvaluatorUpdateOutcome,
    EvaluatorUpdateRequest,
    ReasonCode,
    describe_validation_error,
    make_evaluator_update_event_id,
    make_event_id,
    reason_for_validation_error,
)

from . import aws_model as aws
from . import strategies as gen

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(gen.any_backend_requests)
def test_valid_requests_round_trip_through_json(data: dict[str, Any]) -> None:
    request = EvaluationRequest.model_validate(data)
    again = EvaluationRequest.model_validate_json(request.model_dump_json())
    assert again == request
    assert again.payload_hash() == request.payload_hash()
    from_wire = EvaluationRequest.model_validate(json.loads(json.dumps(data)))
    assert from_wire.payload_hash() == request.payload_hash()
    assert EvaluationRequest.model_validate(data).payload_hash() == request.payload_hash()


@PROPERTY
@given(gen.requests, st.data())
def test_changing_the_request_changes_the_hash(data: dict[str, Any], draw: st.DataObject) -> None:
    before = EvaluationRequest.model_validate(data)
    changed = copy.deepcopy(data)
    field = draw.draw(
        st.sampled_from(["request_id", "producer", "priority", "correlation", "tags"])
    )
    if field == "request_id":
        changed["request_id"] = data["request_id"][:127] + (
            "x" if data["request_id"][-1] != "x" else "y"
        )
    elif field == "producer":
        changed["producer"] = data["producer"][:63] + ("x" if data["producer"][-1] != "x" else "y")
    elif field == "priority":
        changed["priority"] = (before.priority + 1) % 10
    elif field == "correlation":
        changed["correlation"] = {**before.correlation, "__changed__": "1"}
        if len(changed["correlation"]) > 32:
            changed["correlation"] = {"__changed__": "1"}
    else:
        tags = dict(before.evaluation.tags or {})
        tags["changed_tag"] = "x" if tags.get("changed_tag") != "x" else "y"
        changed["evaluation"] = {**data["evaluation"], "tags": tags}
    after = EvaluationRequest.model_validate(changed)
    assert after != before
    assert after.payload_hash() != before.payload_hash()


@PROPERTY
@given(gen.evaluations)
def test_generated_evaluations_pass_botocore_validation(evaluation: dict[str, Any]) -> None:
    request = EvaluationRequest.model_validate(
        {"request_id": "r", "producer": "p", "evaluation": evaluation}
    )
    kwargs = {
        "batchEvaluationName": "evalq_r",
        **request.evaluation.to_boto3_kwargs(),
        "clientToken": "c" * 40,
    }
    report = ParamValidator().validate(kwargs, aws.input_shape())
    assert not report.has_errors(), report.generate_report()


def _validate_or_explain(model: type[Any], value: Any) -> None:
    """Validation succeeds or raises ValidationError, which explains itself line by line."""
    error: ValidationError | None = None
    try:
        model.model_validate(value)
    except ValidationError as exc:
        error = exc
    if error is not None:
        text = describe_validation_error(error)
        assert len(text.splitlines()) == error.error_count() > 0
        assert reason_for_validation_error(error) in set(ReasonCode)


@PROPERTY
@given(gen.json_values)
def test_junk_either_validates_or_raises_validation_error(junk: Any) -> None:
    for model in (EvaluationRequest, EvaluationOutcome, DeadLetter):
        _validate_or_explain(model, junk)


@PROPERTY
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "request_id",
                "producer",
                "backend",
                "evaluation",
                "priority",
                "reply_to",
                "correlation",
                "deadline_seconds",
                "submitted_at",
                "schema_version",
                "x",
            ]
        ),
        st.one_of(gen.json_values, st.sampled_from(["agentcore", "aymara", "agno"])),
    )
)
def test_junk_with_real_field_names_never_crashes(junk: dict[str, Any]) -> None:
    _validate_or_explain(EvaluationRequest, junk)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


@PROPERTY
@given(gen.any_backend_requests, gen.json_values, st.data())
def test_a_valid_request_with_one_junk_value_never_crashes(
    data: dict[str, Any], junk: Any, draw: st.DataObject
) -> None:
    path = draw.draw(st.sampled_from(_paths(data)[1:]))
    broken = copy.deepcopy(data)
    node = broken
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = junk
    _validate_or_explain(EvaluationRequest, broken)


@PROPERTY
@given(gen.request_ids, gen.producers, gen.timestamps, gen.json_values)
def test_outcomes_round_trip(request_id: str, producer: str, moment: str, body: Any) -> None:
    outcome = EvaluationOutcome(
        event_id=make_event_id(request_id, "COMPLETED"),
        request_id=request_id,
        producer=producer,
        backend="agentcore",
        status="COMPLETED",
        accepted_at=moment,
        published_at=moment,
        result={"body": body},
    )
    assert EvaluationOutcome.model_validate_json(outcome.model_dump_json()) == outcome


@PROPERTY
@given(st.one_of(gen.requests, st.text(max_size=50), st.none()), gen.timestamps)
def test_dead_letters_round_trip(original: Any, moment: str) -> None:
    letter = DeadLetter(
        dead_letter_id="dl",
        reason=ReasonCode.invalid_request,
        error="bad",
        request=original,
        attempts=1,
        first_failed_at=moment,
        last_failed_at=moment,
    )
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again == letter
    assert again.request == original


@PROPERTY
@given(gen.any_backend_requests, st.sampled_from(["agentcore", "aymara", "agno"]))
def test_an_evaluation_under_another_backend_is_invalid_request(
    data: dict[str, Any], backend: str
) -> None:
    own = data.get("backend", "agentcore")
    moved = {**data, "backend": backend}
    if backend == own:
        EvaluationRequest.model_validate(moved)
        return
    with pytest.raises(ValidationError) as caught:
        EvaluationRequest.model_validate(moved)
    assert reason_for_validation_error(caught.value) is ReasonCode.invalid_request
    lines = describe_validation_error(caught.value).splitlines()
    assert all(line.startswith("evaluation") for line in lines)


# --- scenarios and evaluator rollouts (contract v1 additions) -----------------------------


@functools.cache
def _invoke_harness_shape() -> Any:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    return client.meta.service_model.operation_model("InvokeHarness").input_shape


@PROPERTY
@given(gen.scenario_requests)
def test_scenario_requests_round_trip_and_speak_boto3(data: dict[str, Any]) -> None:
    request = EvaluationRequest.model_validate(data)
    again = EvaluationRequest.model_validate_json(request.model_dump_json())
    assert again == request
    assert again.payload_hash() == request.payload_hash()
    assert request.scenarios is not None
    shape = _invoke_harness_shape()
    for index, item in enumerate(request.scenarios.items):
        report = ParamValidator().validate(
            {
                "harnessArn": request.scenarios.harnessArn,
                "runtimeSessionId": "s" * 40,
                "messages": item.harness_messages(),
            },
            shape,
        )
        assert not report.has_errors(), report.generate_report()
        kwargs = request.evaluation.to_boto3_kwargs()
        kwargs["evaluationMetadata"] = {"sessionMetadata": [item.session_metadata(f"s{index}")]}
        kwargs.update(batchEvaluationName="evalq_x", clientToken="t" * 40)
        report = ParamValidator().validate(kwargs, aws.input_shape())
        assert not report.has_errors(), report.generate_report()


@PROPERTY
@given(gen.scenario_requests, gen.json_values, st.data())
def test_a_scenario_request_with_one_junk_value_never_crashes(
    data: dict[str, Any], junk: Any, draw: st.DataObject
) -> None:
    path = draw.draw(st.sampled_from(_paths(data["scenarios"])))
    broken = copy.deepcopy(data)
    if not path:
        broken["scenarios"] = junk
    else:
        node = broken["scenarios"]
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = junk
    _validate_or_explain(EvaluationRequest, broken)


@PROPERTY
@given(gen.json_values)
def test_junk_rollouts_validate_or_explain(junk: Any) -> None:
    for model in (EvaluatorUpdateRequest, EvaluatorUpdateOutcome):
        _validate_or_explain(model, junk)
    _validate_or_explain(
        EvaluatorUpdateRequest,
        {"request_id": "r", "producer": "p", "evaluator_id": "judge-abcdefghij", "update": junk},
    )


@PROPERTY
@given(gen.request_ids, gen.producers, gen.timestamps, gen.json_values)
def test_rollout_outcomes_round_trip(
    request_id: str, producer: str, moment: str, body: Any
) -> None:
    outcome = EvaluatorUpdateOutcome(
        event_id=make_evaluator_update_event_id(request_id, "UPDATED"),
        request_id=request_id,
        producer=producer,
        evaluator_id="judge-abcdefghij",
        status="UPDATED",
        evaluator={"body": body},
        accepted_at=moment,
        update_called_at=moment,
        active_at=moment,
        published_at=moment,
    )
    assert EvaluatorUpdateOutcome.model_validate_json(outcome.model_dump_json()) == outcome


@PROPERTY
@given(
    gen.request_ids,
    gen.timestamps,
    st.lists(
        st.fixed_dictionaries(
            {"index": st.integers(0, 499), "attempts": st.integers(0, 5)},
            optional={
                "scenario_id": gen.free_text,
                "session_id": st.text(max_size=100),
                "stop_reason": st.sampled_from(["end_turn", "max_tokens"]),
                "error": gen.free_text,
            },
        ),
        max_size=5,
    ),
)
def test_outcomes_with_scenarios_round_trip(
    request_id: str, moment: str, items: list[dict[str, Any]]
) -> None:
    outcome = EvaluationOutcome(
        event_id=make_event_id(request_id, "COMPLETED"),
        request_id=request_id,
        producer="p",
        backend="agentcore",
        status="COMPLETED",
        accepted_at=moment,
        published_at=moment,
        scenarios=items,
    )
    assert EvaluationOutcome.model_validate_json(outcome.model_dump_json()) == outcome
