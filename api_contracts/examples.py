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


#: A harness of the emulated account (any well-formed one is a harness there).
SAMPLE_HARNESS_ARN = (
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:harness/support_bot-a1b2c3d4e5"
)


def sample_scenario_request(
    request_id: str = "req-scenarios-1",
    producer: str = "demo",
    *,
    prompts: tuple[str, ...] = ("Where is order 7?", "Cancel my plan", "Do you ship to Oslo?"),
    ingestion_delay_seconds: int = 180,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid request with ``scenarios``: the harness runs once per prompt, then a batch
    evaluation scores exactly those sessions (each prompt's scenario id and an assertion
    as its ground truth)."""
    request = sample_request(request_id, producer)
    request["scenarios"] = {
        "harnessArn": SAMPLE_HARNESS_ARN,
        "items": [
            {
                "prompt": prompt,
                "scenario_id": f"scenario-{n}",
                "ground_truth": {"inline": {"assertions": [{"text": "answers politely"}]}},
            }
            for n, prompt in enumerate(prompts, 1)
        ],
        "ingestion_delay_seconds": ingestion_delay_seconds,
    }
    request.update(overrides)
    return request
