"""What an emulated eval produces: the answer of ``POST /eval-runs`` and the record AgentOS
stores, per eval type, in the shapes the real AgentOS gives them (captured from agno with
its evals run against a fake model; the contract tests compare them).

Two sides of the real service are kept on purpose: the answer of the POST has no
``created_at``, ``updated_at`` or ``eval_input`` (they are the stored record's), and the
stored record of an ``agent_as_judge`` eval names no agent or team.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from .models import EvalRunInput, EvalType

MODEL_ID: Final = "gpt-4o-mini"
MODEL_PROVIDER: Final = "OpenAI"
#: What every emulated agent answers.
ANSWER: Final = "4"


def iso_seconds(moment: float) -> str:
    """AgentOS's timestamp: UTC, whole seconds, ``Z``."""
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StoredRun:
    """One eval run in the emulated database."""

    id: str
    db_id: str
    table: str
    record: dict[str, Any]
    started_at: float
    stored_at: float
    deleted_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return dict(self.record)


def _model(body: EvalRunInput) -> tuple[str | None, str | None]:
    if body.model_id is not None and body.model_provider is not None:
        return body.model_id, body.model_provider
    return MODEL_ID, MODEL_PROVIDER


def eval_data(body: EvalRunInput, run_id: str, iteration_seconds: float) -> dict[str, Any]:
    """The answer's ``eval_data`` (agno's result dataclass, as ``asdict`` gives it)."""
    iterations = body.num_iterations
    if body.eval_type is EvalType.ACCURACY:
        results = [
            {"input": body.input, "output": ANSWER, "expected_output": body.expected_output,
             "score": 10, "reason": "Emulated: the answer matches."}
            for _ in range(iterations)
        ]  # fmt: skip
        return {"run_id": run_id, "results": results, **_scores([10] * iterations, mean=True)}
    if body.eval_type is EvalType.AGENT_AS_JUDGE:
        numeric = body.scoring_strategy == "numeric"
        result = {"input": body.input, "output": ANSWER, "criteria": body.criteria,
                  "score": 10 if numeric else None, "reason": "Emulated judgement.",
                  "passed": True}  # fmt: skip
        scores = _scores([10]) if numeric else dict.fromkeys(_scores([10]))
        return {"run_id": run_id, "results": [result], **scores, "pass_rate": 100.0}
    if body.eval_type is EvalType.PERFORMANCE:
        times = [iteration_seconds] * iterations
        memory = [0.25] * iterations
        return {
            "run_id": run_id,
            "run_times": times,
            **_stats("run_time", times),
            "memory_usages": memory,
            **_stats("memory_usage", memory),
        }
    expected = list(body.expected_tool_calls or [])
    return {
        "run_id": run_id,
        "eval_status": "PASSED",
        "failed_tool_calls": [],
        "passed_tool_calls": expected,
        "additional_tool_calls": [],
        "missing_tool_calls": [],
        "failed_argument_checks": [],
        "passed_argument_checks": [],
    }


def _scores(scores: list[int], *, mean: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"avg_score": statistics.fmean(scores)}
    if mean:
        out["mean_score"] = statistics.mean(scores)
    out.update(
        min_score=min(scores),
        max_score=max(scores),
        std_dev_score=statistics.pstdev(scores),
    )
    return out


def _stats(name: str, values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        f"avg_{name}": statistics.fmean(values),
        f"min_{name}": ordered[0],
        f"max_{name}": ordered[-1],
        f"std_dev_{name}": statistics.pstdev(values),
        f"median_{name}": statistics.median(values),
        f"p95_{name}": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
    }


def answer(body: EvalRunInput, run_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /eval-runs`` answer (agno's ``EvalSchema.from_*_eval``)."""
    judge = body.eval_type is EvalType.AGENT_AS_JUDGE
    model_id, provider = (None, None) if judge else _model(body)
    return {
        "id": run_id,
        "agent_id": body.agent_id,
        "model_id": model_id,
        "model_provider": provider,
        "team_id": body.team_id,
        "workflow_id": None,
        "name": body.name,
        "evaluated_component_name": None,
        "user_id": None,
        "eval_type": body.eval_type.value,
        "eval_data": data,
        "eval_input": None,
        "created_at": None,
        "updated_at": None,
    }


def stored_record(
    body: EvalRunInput, run_id: str, data: dict[str, Any], now: float
) -> dict[str, Any]:
    """The record ``GET /eval-runs/{id}`` gives (agno's ``EvalSchema.from_dict``)."""
    record = answer(body, run_id, data)
    kind = body.eval_type
    if kind is EvalType.ACCURACY:
        component = body.agent_id or body.team_id
        eval_input: dict[str, Any] = {
            "additional_guidelines": body.additional_guidelines,
            "additional_context": body.additional_context,
            "num_iterations": body.num_iterations,
            "expected_output": body.expected_output,
            "input": body.input,
        }
    elif kind is EvalType.AGENT_AS_JUDGE:
        record.update(agent_id=None, team_id=None)
        component = None
        numeric = body.scoring_strategy == "numeric"
        eval_input = {
            "criteria": body.criteria,
            "scoring_strategy": body.scoring_strategy or "binary",
            "threshold": body.threshold if numeric else None,
            "additional_guidelines": body.additional_guidelines,
        }
    elif kind is EvalType.PERFORMANCE:
        component = "run_component"
        eval_input = {"num_iterations": body.num_iterations, "warmup_runs": body.warmup_runs}
        stats = {k: v for k, v in data.items() if k.startswith(("avg_", "min_", "max_", "std_",
                                                                 "median_", "p95_"))}  # fmt: skip
        runs = [{"runtime": t, "memory": m}
                for t, m in zip(data["run_times"], data["memory_usages"], strict=True)]  # fmt: skip
        record["eval_data"] = {"result": stats, "runs": runs}
    else:
        component = None
        eval_input = {
            "expected_tool_calls": body.expected_tool_calls,
            "allow_additional_tool_calls": body.allow_additional_tool_calls,
            "expected_tool_call_arguments": body.expected_tool_call_arguments,
        }
    record.update(
        evaluated_component_name=component,
        eval_input=eval_input,
        created_at=iso_seconds(now),
        updated_at=iso_seconds(now),
    )
    return record
