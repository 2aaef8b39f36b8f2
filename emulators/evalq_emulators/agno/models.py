"""The request bodies AgentOS reads, copied from agno (``agno/os/routers/evals/schemas.py``)
so the emulator validates as AgentOS does (lax, unknown members ignored) and answers a
bad body with FastAPI's 422. ``tests/unit/testing/test_agno_emulator.py`` compares them
with agno's own models."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_jsonable_python


class EvalType(StrEnum):
    ACCURACY = "accuracy"
    AGENT_AS_JUDGE = "agent_as_judge"
    PERFORMANCE = "performance"
    RELIABILITY = "reliability"


class EvalRunInput(BaseModel):
    agent_id: str | None = None
    team_id: str | None = None
    model_id: str | None = None
    model_provider: str | None = None
    eval_type: EvalType
    input: str = Field(..., min_length=1)
    additional_guidelines: str | None = None
    additional_context: str | None = None
    num_iterations: int = Field(1, ge=1, le=100)
    name: str | None = None
    expected_output: str | None = None
    criteria: str | None = None
    scoring_strategy: Literal["numeric", "binary"] | None = "binary"
    threshold: int | None = Field(7, ge=1, le=10)
    warmup_runs: int = Field(0, ge=0, le=10)
    expected_tool_calls: list[str] | None = None
    allow_additional_tool_calls: bool = False
    expected_tool_call_arguments: dict[str, dict[str, Any] | list[dict[str, Any]]] | None = None


class UpdateEvalRunRequest(BaseModel):
    name: str = Field(..., min_length=1, max_length=255)


class DeleteEvalRunsRequest(BaseModel):
    eval_run_ids: list[str] = Field(..., min_length=1)


class ListParams(BaseModel):
    """The query parameters of ``GET /eval-runs`` that AgentOS validates."""

    type: Literal["agent", "team", "workflow"] | None = None
    eval_types: str | None = None
    limit: int = Field(20, ge=1)
    page: int = Field(1, ge=0)
    sort_by: str = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"


def fastapi_errors(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """``exc`` as FastAPI's 422 ``detail``: each error's ``loc`` under ``where``
    (``body`` or ``query``), values made JSON."""
    errors = []
    for error in exc.errors(include_url=False):
        item: dict[str, Any] = {
            "type": error["type"],
            "loc": [where, *error["loc"]],
            "msg": error["msg"],
            "input": to_jsonable_python(error.get("input"), fallback=str),
        }
        if "ctx" in error:
            item["ctx"] = to_jsonable_python(error["ctx"], fallback=str)
        errors.append(item)
    return errors
