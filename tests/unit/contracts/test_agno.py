"""``backend: "agno"``: the evaluation block, AgentOS's own checks, body and query."""

from __future__ import annotations

from typing import Any

import pytest

from api_contracts import AgnoEvaluation, EvaluationRequest
from api_contracts.examples import sample_agno_request

from .helpers import assert_rejected, assert_valid, problems


def agno(**members: Any) -> dict[str, Any]:
    """The sample Agno request with ``members`` set (None deletes a member)."""
    request = sample_agno_request()
    for name, value in members.items():
        if value is None:
            request["evaluation"].pop(name, None)
        else:
            request["evaluation"][name] = value
    return request


VALID = [
    {},
    {"agent_id": None, "team_id": "support-team"},
    {"eval_type": "agent_as_judge", "expected_output": None, "criteria": "polite"},
    {"eval_type": "agent_as_judge", "criteria": "c", "scoring_strategy": "numeric",
     "threshold": 10},
    {"eval_type": "performance", "expected_output": None, "warmup_runs": 10, "num_iterations": 100},
    {"eval_type": "reliability", "expected_tool_calls": []},
    {"eval_type": "reliability", "expected_tool_calls": ["multiply"],
     "allow_additional_tool_calls": True,
     "expected_tool_call_arguments": {"multiply": {"a": 2}, "add": [{"a": 1}, {"a": 2}]}},
    {"model_id": "gpt-4o", "model_provider": "openai", "name": "nightly"},
    {"db_id": "evals-db"},
    {"db_id": "evals-db", "table": "agno_eval_runs"},
    {"additional_guidelines": "g", "additional_context": "c", "num_iterations": 1},
]  # fmt: skip


@pytest.mark.parametrize("members", VALID)
def test_valid_agno_evaluations(members: dict[str, Any]) -> None:
    assert_valid(EvaluationRequest, agno(**members))


#: (members, the dotted path a problem line names) for what AgentOS refuses.
INVALID = [
    ({"team_id": "t"}, "evaluation"),  # both
    ({"agent_id": None}, "evaluation"),  # neither
    ({"agent_id": ""}, "evaluation.agent_id"),
    ({"expected_output": None}, "evaluation.expected_output"),
    ({"expected_output": ""}, "evaluation.expected_output"),
    ({"eval_type": "agent_as_judge"}, "evaluation.criteria"),
    ({"eval_type": "reliability"}, "evaluation.expected_tool_calls"),
    ({"eval_type": "speed"}, "evaluation.eval_type"),
    ({"input": ""}, "evaluation.input"),
    ({"num_iterations": 0}, "evaluation.num_iterations"),
    ({"num_iterations": 101}, "evaluation.num_iterations"),
    ({"num_iterations": "3"}, "evaluation.num_iterations"),
    ({"threshold": 11}, "evaluation.threshold"),
    ({"warmup_runs": 11}, "evaluation.warmup_runs"),
    ({"warmup_runs": -1}, "evaluation.warmup_runs"),
    ({"scoring_strategy": "fuzzy"}, "evaluation.scoring_strategy"),
    ({"allow_additional_tool_calls": "yes"}, "evaluation.allow_additional_tool_calls"),
    ({"table": "t"}, "evaluation.db_id"),
    ({"workflow_id": "w"}, "evaluation.workflow_id"),
]


@pytest.mark.parametrize(("members", "path"), INVALID)
def test_what_agentos_refuses_is_refused_naming_the_member(
    members: dict[str, Any], path: str
) -> None:
    assert_rejected(EvaluationRequest, agno(**members), path)


def test_each_problem_is_reported_at_once() -> None:
    found = problems(EvaluationRequest, agno(team_id="t", expected_output=None, table="x"))
    assert found is not None
    assert found.splitlines() == [
        "evaluation: Exactly one of agent_id or team_id",
        "evaluation.expected_output: Required for eval_type accuracy",
        "evaluation.db_id: Required when table is given",
    ]


def test_body_and_query_are_split_and_absent_members_left_out() -> None:
    request = EvaluationRequest.model_validate(
        agno(db_id="d", table="t", name=None, num_iterations=3)
    )
    evaluation = request.evaluation_of(AgnoEvaluation)
    assert evaluation.body() == {
        "eval_type": "accuracy",
        "input": "What is 2 + 2?",
        "expected_output": "4",
        "agent_id": "demo-agent",
        "num_iterations": 3,
    }
    assert evaluation.query() == {"db_id": "d", "table": "t"}
