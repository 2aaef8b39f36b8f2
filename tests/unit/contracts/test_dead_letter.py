"""DeadLetter and its reason codes."""

from __future__ import annotations

from typing import Any

import pytest

from api_contracts import DeadLetter, ReasonCode
from api_contracts.examples import sample_request

from .helpers import assert_rejected


def dead_letter(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dead_letter_id": "dl-1",
        "reason": "invalid_request",
        "error": "evaluation.evaluators: List should have at most 10 items",
        "request": sample_request(),
        "request_id": "req-1",
        "task_name": "evals.submit",
        "worker_host": "worker-1",
        "attempts": 1,
        "first_failed_at": "2025-06-01T12:00:00Z",
        "last_failed_at": "2025-06-01T12:00:00Z",
    }
    data.update(overrides)
    return data


def test_reason_codes_are_stable() -> None:
    assert [code.value for code in ReasonCode] == [
        "invalid_request",
        "idempotency_conflict",
        "unknown_backend",
        "undecodable_message",
        "unsupported_content_type",
        "payload_too_large",
        "bad_task_signature",
        "access_denied",
        "unauthorized",
        "remote_validation",
        "remote_conflict",
        "retries_exhausted",
        "internal_error",
        "no_target",
        "evaluator_locked",
        "forbidden_task",
        "payload_too_deep",
        "producer_not_allowed",
        "producer_quota",
        "publish_refused",
    ]
    assert all(code.name == code.value for code in ReasonCode)


@pytest.mark.parametrize("request_value", [sample_request(), "{not json", None, {"x": [1, None]}])
def test_request_is_kept_parsed_raw_or_absent(request_value: Any) -> None:
    model = DeadLetter.model_validate(dead_letter(request=request_value))
    assert model.request == request_value
    again = DeadLetter.model_validate_json(model.model_dump_json())
    assert again == model
    assert again.request == request_value


def test_defaults_and_json_form() -> None:
    model = DeadLetter.model_validate(dead_letter())
    assert model.replay_count == 0
    assert model.schema_version == 1
    dumped = model.model_dump(mode="json")
    assert dumped["reason"] == "invalid_request"
    assert dumped["first_failed_at"] == "2025-06-01T12:00:00Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reason", "because"),
        ("attempts", -1),
        ("attempts", "3"),
        ("replay_count", -1),
        ("first_failed_at", "2025-06-01 12:00"),
        ("last_failed_at", "2025-06-01T12:00:00"),
        ("error", None),
        ("request", 42),
    ],
)
def test_invalid_fields_are_rejected(field: str, value: Any) -> None:
    assert_rejected(DeadLetter, dead_letter(**{field: value}), field, within=True)
