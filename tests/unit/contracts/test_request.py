"""EvaluationRequest: every field's limits, defaults and the payload hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from api_contracts import (
    SCHEMA_VERSION,
    Backend,
    EvaluationRequest,
    ReasonCode,
    reason_for_validation_error,
)
from api_contracts.examples import sample_request
from api_contracts.request import ADDED_OPTIONAL_FIELDS

from .helpers import assert_rejected, assert_valid, request_with

DAY = 24 * 3600

#: (field, values accepted at the limits, values rejected one past them)
FIELD_LIMITS: list[tuple[str, list[Any], list[Any]]] = [
    ("schema_version", [1], [2, 0, "1"]),
    ("request_id", ["r", "r" * 128, "A9._:-z", "0"], ["", "r" * 129, "-r", ".r", "r r", "r/x"]),
    ("producer", ["p", "p" * 64, "svc-1.a_b", "9"], ["", "p" * 65, "Svc", "-p", "p p", "p:q"]),
    ("backend", ["agentcore"], ["vertex", "AgentCore", "AYMARA", ""]),
    ("deadline_seconds", [None, 1, 30 * DAY], [0, 30 * DAY + 1, -1, "60", 1.5, True]),
    ("retention_seconds", [None, 0, 365 * DAY], [-1, 365 * DAY + 1, "0", False]),
    ("priority", [0, 9], [-1, 10, "5", 5.5, True, None]),
    (
        "reply_to",
        [[], None, ["q"] * 0 + [f"q{i}" for i in range(10)], ["A" + "q" * 199], ["a.b:c-d_e"]],
        [
            [f"q{i}" for i in range(11)],
            ["A" + "q" * 200],
            ["q", "q"],
            ["_q"],
            [""],
            ["q q"],
            "q",
        ],
    ),
    (
        "correlation",
        [
            {},
            None,
            {f"k{i}": "v" for i in range(32)},
            {"k" * 64: "v" * 256},
            {"a.b:c-d_E9": "ünïcode and spaces"},
        ],
        [
            {f"k{i}": "v" for i in range(33)},
            {"k" * 65: "v"},
            {"": "v"},
            {"k k": "v"},
            {"k": "v" * 257},
            {"k": "line\nbreak"},
            {"k": "tab\t"},
            {"k": "nul\x00"},
            {"k": "del\x7f"},
            {"k": "c1\x85"},
            {"k": 1},
        ],
    ),
    (
        "submitted_at",
        [None, "2025-06-01T12:00:00Z", "2025-06-01T12:00:00.123456+05:30"],
        ["2025-06-01T12:00:00", "yesterday", "2025-13-01T00:00:00Z"],
    ),
]

ACCEPTED = [(field, value) for field, good, _ in FIELD_LIMITS for value in good]
REJECTED = [(field, value) for field, _, bad in FIELD_LIMITS for value in bad]


@pytest.mark.parametrize(("field", "value"), ACCEPTED, ids=[f for f, _ in ACCEPTED])
def test_field_accepts_values_at_its_limits(field: str, value: Any) -> None:
    assert_valid(EvaluationRequest, sample_request(**{field: value}))


@pytest.mark.parametrize(("field", "value"), REJECTED, ids=[f for f, _ in REJECTED])
def test_field_rejects_values_past_its_limits(field: str, value: Any) -> None:
    lines = assert_rejected(EvaluationRequest, sample_request(**{field: value}), field, within=True)
    assert all(line.startswith(field) for line in lines.splitlines())


def test_defaults() -> None:
    minimal = {
        "request_id": "r1",
        "producer": "svc",
        "evaluation": sample_request()["evaluation"],
    }
    request = EvaluationRequest.model_validate(minimal)
    assert request.schema_version == SCHEMA_VERSION == 1
    assert request.backend is Backend.AGENTCORE
    assert request.deadline_seconds is None
    assert request.retention_seconds is None
    assert request.reply_to == []
    assert request.correlation == {}
    assert request.priority == 0
    assert request.submitted_at is None


@pytest.mark.parametrize("missing", ["request_id", "producer", "evaluation"])
def test_required_fields(missing: str) -> None:
    request = sample_request()
    del request[missing]
    assert_rejected(EvaluationRequest, request, missing)


def test_unknown_top_level_field_is_rejected() -> None:
    assert_rejected(EvaluationRequest, sample_request(callback_url="http://x"), "callback_url")


def test_submitted_at_is_normalised_to_utc() -> None:
    request = EvaluationRequest.model_validate(
        sample_request(submitted_at="2025-06-01T14:00:00+02:00")
    )
    assert request.submitted_at == datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert request.model_dump(mode="json")["submitted_at"] == "2025-06-01T12:00:00Z"


def test_unknown_backend_is_its_own_reason() -> None:
    with pytest.raises(ValidationError) as caught:
        EvaluationRequest.model_validate(sample_request(backend="vertex"))
    assert reason_for_validation_error(caught.value) is ReasonCode.unknown_backend


# --- payload hash ------------------------------------------------------------------------


def _hash(data: dict[str, Any]) -> str:
    return EvaluationRequest.model_validate(data).payload_hash()


def test_same_request_hashes_equal_however_it_is_spelled() -> None:
    plain = sample_request()
    spelled_out = sample_request(
        reply_to=[], correlation={}, priority=0, deadline_seconds=None, backend="agentcore"
    )
    reordered = json.loads(json.dumps(dict(reversed(list(plain.items())))))
    same_instant = sample_request(submitted_at="2025-06-01T14:00:00+02:00")
    assert _hash(plain) == _hash(spelled_out) == _hash(reordered)
    assert _hash(same_instant) == _hash(sample_request(submitted_at="2025-06-01T12:00:00Z"))
    assert len(_hash(plain)) == 64
    assert int(_hash(plain), 16) >= 0


def test_hash_is_sha256_of_canonical_json() -> None:
    import hashlib

    request = EvaluationRequest.model_validate(sample_request())
    canonical = request.canonical_json()
    assert canonical == json.dumps(
        request.model_dump(mode="json", exclude={"submitted_at", *ADDED_OPTIONAL_FIELDS}),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert request.payload_hash() == hashlib.sha256(canonical.encode()).hexdigest()


def test_fields_added_later_leave_the_hash_of_older_requests_as_it_was() -> None:
    # The hash of the sample request as evalq computed it before any field was added to
    # v1: a request in flight across an upgrade must stay the same job.
    before_additions = "9d55fb5cb997e8fa886c8d15ff9e8081321e57d4202dc875e21d101c722953f3"
    request = EvaluationRequest.model_validate(sample_request())
    assert request.payload_hash() == before_additions
    assert '"scenarios"' not in request.canonical_json()
    assert '"target"' not in request.canonical_json()
    routed = EvaluationRequest.model_validate(sample_request(target="checkout-prod"))
    assert routed.payload_hash() != request.payload_hash()


CHANGES: list[tuple[str, Any]] = [
    ("request_id", "req-2"),
    ("producer", "other"),
    ("deadline_seconds", 60),
    ("retention_seconds", 0),
    ("reply_to", ["extra"]),
    ("correlation", {"k": "v"}),
    ("priority", 1),
    ("evaluation", {**sample_request()["evaluation"], "description": "x"}),
    (
        "evaluation",
        {
            **sample_request()["evaluation"],
            "evaluators": [
                {"evaluatorId": "Builtin.Correctness"},
                {"evaluatorId": "Builtin.Helpfulness"},
            ],
        },
    ),
]


@pytest.mark.parametrize(("field", "value"), CHANGES, ids=[f for f, _ in CHANGES])
def test_any_changed_field_changes_the_hash(field: str, value: Any) -> None:
    assert _hash(sample_request(**{field: value})) != _hash(sample_request())


def test_send_time_is_not_part_of_the_payload() -> None:
    resent = sample_request(submitted_at="2025-06-01T12:00:05Z")
    assert _hash(resent) == _hash(sample_request(submitted_at="2025-06-01T12:00:00Z"))
    assert _hash(resent) == _hash(sample_request())


def test_nested_change_changes_the_hash() -> None:
    changed = request_with("evaluation.tags.team", "other")
    assert _hash(changed) != _hash(sample_request())
