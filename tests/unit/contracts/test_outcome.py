"""EvaluationOutcome and its stable event id."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from api_contracts import EvaluationOutcome, OutcomeStatus, make_event_id

from .helpers import assert_rejected


def outcome(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": make_event_id("req-1", "COMPLETED"),
        "request_id": "req-1",
        "producer": "demo",
        "backend": "agentcore",
        "status": "COMPLETED",
        "batch_evaluation_id": "evalq_req_1-abcdefghij",
        "batch_evaluation_arn": "arn:aws:bedrock-agentcore:us-east-1:1:batch-evaluation/b",
        "batch_evaluation_name": "evalq_req_1",
        "accepted_at": "2025-06-01T12:00:00Z",
        "started_at": "2025-06-01T12:00:05Z",
        "finished_at": "2025-06-01T12:30:00Z",
        "published_at": "2025-06-01T12:30:01Z",
        "result": {"status": "COMPLETED", "totalNumberOfSessions": 3},
        "correlation": {"trace": "abc"},
    }
    data.update(overrides)
    return data


def test_status_values_are_the_final_states() -> None:
    assert [s.value for s in OutcomeStatus] == [
        "COMPLETED",
        "COMPLETED_WITH_ERRORS",
        "FAILED",
        "STOPPED",
        "EXPIRED",
        "CANCELLED",
    ]


def test_event_id_is_stable_and_distinct_per_request_and_status() -> None:
    ids = {make_event_id(r, s) for r in ("req-1", "req-2") for s in OutcomeStatus}
    assert len(ids) == 2 * len(OutcomeStatus)
    assert make_event_id("req-1", "FAILED") == make_event_id("req-1", OutcomeStatus.FAILED)
    assert EvaluationOutcome.make_event_id("req-1", "FAILED") == make_event_id("req-1", "FAILED")
    # pinned: consumers de-duplicate on it, so it must never change between releases
    assert make_event_id("req-1", "COMPLETED") == str(
        uuid.uuid5(uuid.UUID("5a559cf2-0ab6-572f-96b2-21db8ff4873a"), "req-1:COMPLETED")
    )
    assert uuid.UUID(make_event_id("req-1", "COMPLETED")).version == 5


def test_event_id_rejects_a_status_that_is_not_final() -> None:
    with pytest.raises(ValueError, match="RUNNING"):
        make_event_id("req-1", "RUNNING")


def test_outcome_round_trips_through_json() -> None:
    model = EvaluationOutcome.model_validate(outcome())
    again = EvaluationOutcome.model_validate_json(model.model_dump_json())
    assert again == model
    dumped = model.model_dump(mode="json")
    assert dumped["accepted_at"] == "2025-06-01T12:00:00Z"
    assert dumped["status"] == "COMPLETED"
    assert dumped["backend"] == "agentcore"
    assert dumped["schema_version"] == 1


def test_result_from_boto3_is_made_json_safe() -> None:
    body = {
        "createdAt": datetime(2025, 6, 1, 12, tzinfo=UTC),
        "nested": [{"at": datetime(2025, 1, 1, tzinfo=UTC)}],
    }
    model = EvaluationOutcome.model_validate(outcome(result=body))
    assert model.result == {
        "createdAt": "2025-06-01T12:00:00Z",
        "nested": [{"at": "2025-01-01T00:00:00Z"}],
    }
    assert EvaluationOutcome.model_validate_json(model.model_dump_json()) == model


def test_result_numbers_json_cannot_carry_become_null() -> None:
    model = EvaluationOutcome.model_validate(
        outcome(result={"score": float("nan"), "scores": [float("inf"), 0.5]})
    )
    assert model.result == {"score": None, "scores": [None, 0.5]}
    assert EvaluationOutcome.model_validate_json(model.model_dump_json()) == model


def test_result_that_is_not_json_is_rejected() -> None:
    assert_rejected(EvaluationOutcome, outcome(result={"x": object()}), "result")


def test_optional_fields() -> None:
    model = EvaluationOutcome.model_validate(
        outcome(
            status="EXPIRED",
            batch_evaluation_id=None,
            batch_evaluation_arn=None,
            batch_evaluation_name=None,
            started_at=None,
            finished_at=None,
            result=None,
            error="deadline passed before a slot was free",
            correlation=None,
        )
    )
    assert model.status is OutcomeStatus.EXPIRED
    assert model.correlation == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "RUNNING"),
        ("backend", "vertex"),
        ("accepted_at", "2025-06-01T12:00:00"),
        ("published_at", None),
        ("request_id", ""),
        ("schema_version", 2),
    ],
)
def test_invalid_fields_are_rejected(field: str, value: Any) -> None:
    assert_rejected(EvaluationOutcome, outcome(**{field: value}), field)
