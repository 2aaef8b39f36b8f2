"""``EvaluationRequest``: what a producer puts on ``evals.requests`` (task ``evals.submit``)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api_contracts.agentcore import AgentCoreEvaluation
from api_contracts.agno import AgnoEvaluation
from api_contracts.aymara import AymaraEvaluation
from api_contracts.common import (
    SCHEMA_ID_BASE,
    Backend,
    Correlation,
    ProducerName,
    RequestId,
    UtcDatetime,
)
from api_contracts.scenarios import ScenarioRun, drop_unset_overrides

#: Longest deadline a producer may ask for (30 days).
MAX_DEADLINE_SECONDS: Final = 30 * 24 * 3600
#: Longest time a finished remote job may be kept before deletion (365 days).
MAX_RETENTION_SECONDS: Final = 365 * 24 * 3600
#: Most extra result queues per request.
MAX_REPLY_TO: Final = 10

#: Fields added to version 1 after it shipped. Absent or null, they stay out of the
#: canonical JSON, so a request sent before they existed keeps its payload hash (and its
#: job) across the upgrade. Inside ``scenarios``, the InvokeHarness overrides of a run
#: and of its items were added later too (``scenarios.drop_unset_overrides``).
ADDED_OPTIONAL_FIELDS: Final = frozenset({"target", "scenarios"})

#: Name of a target (an account and region with its own quotas) as the targets file names it.
TargetName = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")]

#: Name of a queue an outcome is also published to.
QueueName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")]


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _unique(names: list[str]) -> list[str]:
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise PydanticCustomError(
            "duplicate_queue",
            "Queue names must be unique, repeated: {names}",
            {"names": ", ".join(duplicates)},
        )
    return names


#: The ``evaluation`` block of each backend.
Evaluation = AgentCoreEvaluation | AymaraEvaluation | AgnoEvaluation
EVALUATIONS: Final[dict[Backend, type[BaseModel]]] = {
    Backend.AGENTCORE: AgentCoreEvaluation,
    Backend.AYMARA: AymaraEvaluation,
    Backend.AGNO: AgnoEvaluation,
}


_E = TypeVar("_E", AgentCoreEvaluation, AymaraEvaluation, AgnoEvaluation)


def _evaluation_follows_backend(schema: dict[str, Any]) -> None:
    """JSON Schema: ``evaluation`` is the block of the request's ``backend`` (agentcore
    when absent), as the model validates it."""
    # The union's own branches, in EVALUATIONS order: their references are pydantic's.
    branches = schema["properties"]["evaluation"]["anyOf"]
    rules = []
    for backend, branch in zip(EVALUATIONS, branches, strict=True):
        condition: dict[str, Any] = {"properties": {"backend": {"const": backend.value}}}
        if backend is not Backend.AGENTCORE:
            condition["required"] = ["backend"]
        then = {"properties": {"evaluation": dict(branch)}}
        rules.append({"if": condition, "then": then})
    schema["allOf"] = rules
    schema["$id"] = f"{SCHEMA_ID_BASE}evaluation-request.json"


ReplyTo = Annotated[
    list[QueueName],
    BeforeValidator(_none_as_empty_list),
    Field(max_length=MAX_REPLY_TO, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]


class EvaluationRequest(BaseModel):
    """One batch evaluation a producer asks evalq to run (contract version 1)."""

    model_config = ConfigDict(
        extra="forbid",
        title="EvaluationRequest",
        json_schema_extra=lambda schema, _cls: _evaluation_follows_backend(schema),
    )

    schema_version: Literal[1] = Field(1, description="Version of this contract.")
    request_id: RequestId = Field(
        description="The producer's idempotency key: the same key and payload is the same job."
    )
    producer: ProducerName = Field(description="Name of the calling service.")
    backend: Backend = Field(Backend.AGENTCORE, description="Remote evaluation service.")
    evaluation: Evaluation = Field(
        description=(
            "The backend's parameters: agentcore, StartBatchEvaluation as boto3 spells them "
            "without clientToken; aymara, an eval run as aymara-ai-sdk spells it; agno, an "
            "AgentOS eval run (POST /eval-runs body plus db_id and table)."
        )
    )
    deadline_seconds: Annotated[StrictInt, Field(ge=1, le=MAX_DEADLINE_SECONDS)] | None = Field(
        None, description="Seconds after acceptance at which an unfinished job is stopped."
    )
    retention_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_RETENTION_SECONDS)] | None = Field(
        None, description="Seconds a finished remote job is kept before it is deleted."
    )
    reply_to: ReplyTo = Field(
        default_factory=list, description="Extra queues the outcome is published to."
    )
    correlation: Correlation = Field(
        default_factory=dict, description="Small str->str map echoed back in the outcome."
    )
    priority: Annotated[StrictInt, Field(ge=0, le=9)] = Field(
        0, description="0-9; higher is admitted first."
    )
    submitted_at: UtcDatetime | None = Field(
        None, description="When the producer sent the request (ISO 8601 with a zone)."
    )
    target: TargetName | None = Field(
        None,
        description="The target (account and region) to run in; unset: evalq routes the "
        "request by its log groups, service name or online evaluation config.",
    )
    scenarios: ScenarioRun | None = Field(
        None,
        description="Run a harness on these items first, then evaluate exactly the sessions "
        "it ran (evalq fills filterConfig.sessionIds and evaluationMetadata).",
    )

    @field_validator("evaluation", mode="wrap")
    @classmethod
    def _as_the_backend_spells_it(
        cls, value: Any, _handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        backend = info.data.get("backend")
        if backend is None:
            # ``backend`` itself is wrong and reported as such (unknown_backend); the
            # evaluation cannot be read without knowing whose it is.
            return value
        model = EVALUATIONS[backend]
        # A ValidationError raised here keeps its locations under ``evaluation``.
        return value if isinstance(value, model) else model.model_validate(value)

    def evaluation_of(self, kind: type[_E]) -> _E:
        """``evaluation`` as the block of one backend; ``TypeError`` if it is another's
        (a request routed to the wrong backend is a bug)."""
        if not isinstance(self.evaluation, kind):
            raise TypeError(f"request {self.request_id} is for backend {self.backend.value}")
        return self.evaluation

    @model_validator(mode="after")
    def _scenarios_leave_the_sessions_to_evalq(self) -> EvaluationRequest:
        if self.scenarios is not None:
            if not isinstance(self.evaluation, AgentCoreEvaluation):
                raise PydanticCustomError(
                    "scenario_backend", "scenarios run only with backend agentcore"
                )
            _check_scenario_evaluation(self.evaluation)
        return self

    def canonical_json(self) -> str:
        """The request as canonical JSON (sorted keys, no whitespace, defaults filled in),
        without ``submitted_at``: a producer's retry of the same request carries a new send
        time and must still count as the same request. Fields added later are left out
        while unset (``ADDED_OPTIONAL_FIELDS``), so a request's hash does not change with
        the evalq version that computes it."""
        data = self.model_dump(mode="json", exclude={"submitted_at"})
        for name in ADDED_OPTIONAL_FIELDS:
            if data.get(name) is None:
                data.pop(name, None)
        if "scenarios" in data:
            drop_unset_overrides(data["scenarios"])
        return json.dumps(
            data,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def payload_hash(self) -> str:
        """sha256 hex of :meth:`canonical_json`: equal for equal requests, else different."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def _check_scenario_evaluation(evaluation: AgentCoreEvaluation) -> None:
    """With ``scenarios``, the sessions to evaluate are the ones evalq runs: the data
    source names where their traces land (service and log groups), never the sessions."""
    source = evaluation.dataSourceConfig.cloudWatchLogs
    if source is None:
        raise PydanticCustomError(
            "scenario_source",
            "With scenarios, evaluation.dataSourceConfig must be cloudWatchLogs "
            "(serviceNames and logGroupNames of the harness's traces)",
        )
    if not source.logGroupNames:
        raise PydanticCustomError(
            "scenario_source",
            "With scenarios, evaluation.dataSourceConfig.cloudWatchLogs.logGroupNames must "
            "name the log groups of the harness's traces",
        )
    named = source.filterConfig is not None and (
        source.filterConfig.sessionIds is not None
        or source.filterConfig.sessionTraceIds is not None
    )
    if named:
        raise PydanticCustomError(
            "scenario_sessions",
            "With scenarios, evalq names the sessions: leave out "
            "evaluation.dataSourceConfig.cloudWatchLogs.filterConfig.sessionIds and "
            "sessionTraceIds",
        )
    if evaluation.evaluationMetadata is not None:
        raise PydanticCustomError(
            "scenario_metadata",
            "With scenarios, evalq fills evaluation.evaluationMetadata from each item's "
            "scenario_id and ground_truth: leave it out",
        )
    if evaluation.datasetExecutionConfig is not None:
        raise PydanticCustomError(
            "scenario_dataset",
            "With scenarios, the harness runs the agent: leave out "
            "evaluation.datasetExecutionConfig",
        )
