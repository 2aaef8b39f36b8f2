"""A valid sample request, for tests, demos and documentation."""

from __future__ import annotations

from typing import Any


def sample_request(
    request_id: str = "req-1", producer: str = "demo", **overrides: Any
) -> dict[str, Any]:
    """A valid ``EvaluationRequest`` as a plain JSON-able dict (a fresh copy on every call).

    ``overrides`` replace top-level keys (``evaluation=...`` replaces the whole evaluation).
    """
    request: dict[str, Any] = {
        "schema_version": 1,
        "request_id": request_id,
        "producer": producer,
        "backend": "agentcore",
        "evaluation": {
            "evaluators": [
                {"evaluatorId": "Builtin.Helpfulness"},
                {"evaluatorId": "Builtin.Correctness"},
            ],
            "dataSourceConfig": {
                "cloudWatchLogs": {
                    "serviceNames": ["demo-agent"],
                    "logGroupNames": ["/aws/bedrock-agentcore/runtimes/demo-agent-DEFAULT"],
                }
            },
            "tags": {"team": "demo", "purpose": "evalq-sample"},
        },
    }
    request.update(overrides)
    return request


def sample_aymara_request(
    request_id: str = "req-aymara-1",
    producer: str = "demo",
    *,
    eval_uuid: str = "test.5f7c2a8e-0000-4000-8000-000000000001",
    prompt_uuids: tuple[str, ...] = ("question.5f7c2a8e-0000-4000-8000-00000000000a",),
    **overrides: Any,
) -> dict[str, Any]:
    """A valid ``backend: "aymara"`` request answering each of ``prompt_uuids``."""
    request: dict[str, Any] = {
        "schema_version": 1,
        "request_id": request_id,
        "producer": producer,
        "backend": "aymara",
        "evaluation": {
            "eval_uuid": eval_uuid,
            "responses": [
                {"prompt_uuid": uuid, "content": f"answer {n}", "content_type": "text"}
                for n, uuid in enumerate(prompt_uuids, 1)
            ],
            "ai_description": "demo assistant",
        },
    }
    request.update(overrides)
    return request


def sample_agno_request(
    request_id: str = "req-agno-1", producer: str = "demo", **overrides: Any
) -> dict[str, Any]:
    """A valid ``backend: "agno"`` request: an accuracy eval of the agent ``demo-agent``."""
    request: dict[str, Any] = {
        "schema_version": 1,
        "request_id": request_id,
        "producer": producer,
        "backend": "agno",
        "evaluation": {
            "eval_type": "accuracy",
            "input": "What is 2 + 2?",
            "expected_output": "4",
            "agent_id": "demo-agent",
        },
    }
    request.update(overrides)
    return request
