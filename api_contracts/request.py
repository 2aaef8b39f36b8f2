"""``EvaluationRequest``: what a producer puts on ``evals.requests`` (task ``evals.submit``)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    model_validator,
)
from pydantic_core import PydanticCustomError

from api_contracts.agentcore import AgentCoreEvaluation
from api_contracts.common import (
    SCHEMA_ID_BASE,
    Backend,
    Correlation,
    ProducerName,
    RequestId,
    UtcDatetime,
)
from api_contracts.scenarios import ScenarioRun

#: Longest deadline a producer may ask for (30 days).
MAX_DEADLINE_SECONDS: Final = 30 * 24 * 3600
#: Longest time a finished remote job may be kept before deletion (365 days).
MAX_RETENTION_SECONDS: Final = 365 * 24 * 3600
#: Most extra result queues per request.
MAX_REPLY_TO: Final = 10

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
        json_schema_extra={"$id": f"{SCHEMA_ID_BASE}evaluation-request.json"},
    )

    schema_version: Literal[1] = Field(1, description="Version of this contract.")
    request_id: RequestId = Field(
        description="The producer's idempotency key: the same key and payload is the same job."
    )
    producer: ProducerName = Field(description="Name of the calling service.")
    backend: Backend = Field(Backend.AGENTCORE, description="Remote evaluation service.")
    evaluation: AgentCoreEvaluation = Field(
        description="StartBatchEvaluation parameters as boto3 spells them, without clientToken."
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
    scenarios: ScenarioRun | None = Field(
        None,
        description="Run a harness on these items first, then evaluate exactly the sessions "
        "it ran (evalq fills filterConfig.sessionIds and evaluationMetadata).",
    )

    @model_validator(mode="after")
    def _scenarios_leave_the_sessions_to_evalq(self) -> EvaluationRequest:
        if self.scenarios is not None:
            _check_scenario_evaluation(self.evaluation)
        return self

    def canonical_json(self) -> str:
        """The request as canonical JSON (sorted keys, no whitespace, defaults filled in),
        without ``submitted_at``: a producer's retry of the same request carries a new send
        time and must still count as the same request. Optional blocks added to contract
        v1 later (``scenarios``) are left out when absent, so a request's hash does not
        change with the evalq version that computes it."""
        absent_additions = {"scenarios"} if self.scenarios is None else set()
        return json.dumps(
            self.model_dump(mode="json", exclude={"submitted_at", *absent_additions}),
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
