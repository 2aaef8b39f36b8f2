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
