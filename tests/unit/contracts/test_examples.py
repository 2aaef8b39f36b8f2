"""The sample request other code uses as a fixture, and the package's public names."""

from __future__ import annotations

import json

import api_contracts
from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request


def test_sample_request_is_valid_plain_json() -> None:
    data = sample_request()
    assert json.loads(json.dumps(data)) == data
    request = EvaluationRequest.model_validate(data)
    assert (request.request_id, request.producer) == ("req-1", "demo")
    evaluation = request.evaluation
    assert [e.evaluatorId for e in evaluation.evaluators or []] == [
        "Builtin.Helpfulness",
        "Builtin.Correctness",
    ]
    source = evaluation.dataSourceConfig.cloudWatchLogs
    assert source is not None
    assert len(source.serviceNames) == 1
    assert len(source.logGroupNames or []) == 1
    assert evaluation.tags


def test_sample_request_takes_ids_and_overrides() -> None:
    data = sample_request("r-9", "billing", priority=7, correlation={"order": "42"})
    request = EvaluationRequest.model_validate(data)
    assert (request.request_id, request.producer, request.priority) == ("r-9", "billing", 7)
    assert request.correlation == {"order": "42"}


def test_sample_request_is_a_fresh_copy() -> None:
    first = sample_request()
    first["evaluation"]["evaluators"].clear()
    assert sample_request()["evaluation"]["evaluators"]


def test_public_names() -> None:
    assert set(api_contracts.__all__) == {
        "EvaluationRequest",
        "EvaluationOutcome",
        "OutcomeStatus",
        "DeadLetter",
        "ReasonCode",
        "AgentCoreEvaluation",
        "AymaraEvaluation",
        "AgnoEvaluation",
        "Backend",
        "CancelRequest",
        "SCHEMA_VERSION",
        "describe_validation_error",
        "reason_for_validation_error",
        "make_event_id",
        "EvaluatorUpdateRequest",
        "EvaluatorUpdateOutcome",
        "EvaluatorUpdateStatus",
        "make_evaluator_update_event_id",
        "ScenarioRun",
        "ScenarioItem",
        "ScenarioItemOutcome",
    }
    assert all(hasattr(api_contracts, name) for name in api_contracts.__all__)


def test_sample_scenario_request_is_valid_and_names_its_items() -> None:
    from api_contracts.examples import sample_scenario_request

    request = EvaluationRequest.model_validate(
        sample_scenario_request("s-1", prompts=("a", "b"), ingestion_delay_seconds=3)
    )
    assert request.scenarios is not None
    assert [i.prompt for i in request.scenarios.items] == ["a", "b"]
    assert [i.scenario_id for i in request.scenarios.items] == ["scenario-1", "scenario-2"]
    assert request.scenarios.ingestion_delay_seconds == 3
