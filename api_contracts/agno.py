"""``AgnoEvaluation``: an Agno AgentOS eval run (``POST /eval-runs``), as AgentOS spells it.

Every field and limit is copied from AgentOS's own request model (``EvalRunInput`` in
``agno/os/routers/evals/schemas.py``) and its route (``agno/os/routers/evals/evals.py``),
plus ``db_id`` and ``table``, which go in the query string;
``tests/unit/contracts/test_agno_drift.py`` fails when agno and these classes disagree.

The route's own checks are made here too, so a request AgentOS would refuse is refused
before it is queued:

* exactly one of ``agent_id`` / ``team_id`` (AgentOS: 400 for both or neither);
* ``accuracy`` needs ``expected_output``, ``agent_as_judge`` needs ``criteria`` (both
  non-empty, as AgentOS tests them), ``reliability`` needs ``expected_tool_calls``;
* ``table`` needs ``db_id`` (AgentOS: 400).

Deliberate differences: absent members are not sent (AgentOS fills in its defaults),
``null`` counts as absent, integers and booleans are strict, identifiers may not be empty
(AgentOS would read an empty id as absent), and unknown members are refused (AgentOS
ignores them, so a misspelt member would silently change the run).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError


class EvalType(StrEnum):
    """AgentOS's ``EvalType``."""

    ACCURACY = "accuracy"
    AGENT_AS_JUDGE = "agent_as_judge"
    PERFORMANCE = "performance"
    RELIABILITY = "reliability"


#: The member each eval type cannot run without, as AgentOS checks it.
REQUIRED_FOR: Final[dict[EvalType, str]] = {
    EvalType.ACCURACY: "expected_output",
    EvalType.AGENT_AS_JUDGE: "criteria",
    EvalType.RELIABILITY: "expected_tool_calls",
}

#: An agent, team, database or table id.
ComponentId = Annotated[str, StringConstraints(min_length=1)]

#: Expected arguments of a tool call: one mapping, or one per expected call.
ToolCallArguments = dict[str, dict[str, Any] | list[dict[str, Any]]]


class AgnoEvaluation(BaseModel):
    """``POST /eval-runs`` body members, plus its ``db_id`` and ``table`` query parameters."""

    model_config = ConfigDict(
        extra="forbid",
        field_title_generator=lambda name, _info: name,
        json_schema_extra=lambda schema, _cls: _state_cross_field_rules(schema),
    )

    eval_type: EvalType
    input: Annotated[str, StringConstraints(min_length=1)]
    agent_id: ComponentId | None = None
    team_id: ComponentId | None = None
    model_id: str | None = None
    model_provider: str | None = None
    name: str | None = None
    num_iterations: Annotated[StrictInt, Field(ge=1, le=100)] | None = None
    additional_guidelines: str | None = None
    additional_context: str | None = None
    # accuracy
    expected_output: str | None = None
    # agent_as_judge
    criteria: str | None = None
    scoring_strategy: Literal["numeric", "binary"] | None = None
    threshold: Annotated[StrictInt, Field(ge=1, le=10)] | None = None
    # performance
    warmup_runs: Annotated[StrictInt, Field(ge=0, le=10)] | None = None
    # reliability
    expected_tool_calls: list[str] | None = None
    allow_additional_tool_calls: StrictBool | None = None
    expected_tool_call_arguments: ToolCallArguments | None = None
    # query string
    db_id: ComponentId | None = None
    table: ComponentId | None = None

    @model_validator(mode="after")
    def _as_agentos_checks_it(self) -> AgnoEvaluation:
        problems: list[InitErrorDetails] = []
        if (self.agent_id is None) == (self.team_id is None):
            problems.append(
                _problem(None, "one_of_agent_or_team", "Exactly one of agent_id or team_id")
            )
        needed = REQUIRED_FOR.get(self.eval_type)
        if needed is not None and not _given(getattr(self, needed), needed):
            problems.append(
                _problem(
                    needed,
                    "required_for_eval_type",
                    f"Required for eval_type {self.eval_type.value}",
                )
            )
        if self.table is not None and self.db_id is None:
            problems.append(_problem("db_id", "db_id_for_table", "Required when table is given"))
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def body(self) -> dict[str, Any]:
        """The ``POST /eval-runs`` JSON body: given members only, without the query."""
        return self.model_dump(mode="json", exclude_none=True, exclude={"db_id", "table"})

    def query(self) -> dict[str, str]:
        """The ``db_id`` / ``table`` query parameters that are given."""
        return self.model_dump(mode="json", exclude_none=True, include={"db_id", "table"})


def _given(value: Any, member: str) -> bool:
    # AgentOS tests expected_output and criteria for truth, expected_tool_calls for None.
    return value is not None if member == "expected_tool_calls" else bool(value)


def _problem(member: str | None, kind: str, message: str) -> InitErrorDetails:
    """A problem located at ``member`` (None: the evaluation as a whole)."""
    loc = () if member is None else (member,)
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)


def _state_cross_field_rules(schema: dict[str, Any]) -> None:
    """The route's checks in JSON Schema terms, so schema validators refuse what evalq does."""
    given = {"type": "string"}
    schema["oneOf"] = [
        {"required": [member], "properties": {member: given}} for member in ("agent_id", "team_id")
    ]
    rules: list[dict[str, Any]] = []
    for eval_type, member in REQUIRED_FOR.items():
        shape = {"type": "array"} if member == "expected_tool_calls" else {"minLength": 1, **given}
        rules.append(
            {
                "if": {"properties": {"eval_type": {"const": eval_type.value}}},
                "then": {"required": [member], "properties": {member: shape}},
            }
        )
    rules.append(
        {
            "if": {"required": ["table"], "properties": {"table": given}},
            "then": {"required": ["db_id"], "properties": {"db_id": given}},
        }
    )
    schema["allOf"] = rules
