"""``AgentCoreEvaluation``: the StartBatchEvaluation parameters, exactly as boto3 spells them.

Every constraint is copied from the botocore service model of ``bedrock-agentcore``
(``StartBatchEvaluation`` input shape); ``tests/unit/contracts/test_aws_drift.py`` fails when
the model and these classes disagree. Class names follow the AWS shape names.

Two deliberate differences from the AWS input shape:

* ``clientToken`` is not a field and is rejected: evalq derives the idempotency token from
  the request so that a redelivered message never starts a second job.
* ``batchEvaluationName`` is optional: evalq derives a unique name when it is absent.
"""

# ruff: noqa: N815  (field names are the AWS camelCase parameter names)

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from api_contracts.common import KeyPatternInPropertyNames, UtcDatetime, full_match


def _aws_string(
    pattern: str | None = None, min_length: int | None = None, max_length: int | None = None
) -> StringConstraints:
    return StringConstraints(
        pattern=None if pattern is None else full_match(pattern),
        min_length=min_length or None,
        max_length=max_length,
    )


_CUSTOM_ID = r"[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}"

BatchEvaluationName = Annotated[str, _aws_string(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")]
EvaluatorId = Annotated[
    str,
    _aws_string(
        rf"(Builtin\.[a-zA-Z0-9._-]+|ThirdParty\.[a-zA-Z0-9_-]+\.[a-zA-Z0-9_-]+|{_CUSTOM_ID})",
        1,
        111,
    ),
]
InsightId = Annotated[str, _aws_string(rf"(Builtin\.[a-zA-Z0-9._-]+|{_CUSTOM_ID})")]
LogGroupName = Annotated[str, _aws_string(r"[.\-_/#A-Za-z0-9]+")]
LogGroupNamePrefix = Annotated[str, _aws_string(r"[.\-_/#A-Za-z0-9]+", 1, 512)]
TraceId = Annotated[str, _aws_string(None, 32, 32)]
OnlineEvaluationConfigArn = Annotated[
    str,
    _aws_string(
        r"arn:aws[a-zA-Z-]*:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:online-evaluation-config\/"
        + _CUSTOM_ID
    ),
]
EvaluationContentText = Annotated[str, _aws_string(None, 1, 100_000)]
EvaluationToolName = Annotated[str, _aws_string(None, 1, 500)]
GroundTruthTurnInputPrompt = Annotated[str, _aws_string(None, 0, 4000)]
TagKey = Annotated[str, _aws_string(r"[a-zA-Z0-9\s._:/=+@-]*", 1, 128)]
TagValue = Annotated[str, _aws_string(r"[a-zA-Z0-9\s._:/=+@-]*", 0, 256)]
KmsKeyArn = Annotated[
    str,
    _aws_string(r"arn:aws(|-cn|-us-gov):kms:[a-zA-Z0-9-]*:[0-9]{12}:key/[a-zA-Z0-9-]{36}", 1, 2048),
]
BatchEvaluationDescription = Annotated[str, _aws_string(None, 0, 200)]
OptionalLogGroupName = Annotated[str, _aws_string(r"$|^[.\-_/#A-Za-z0-9]+")]
LogStreamName = Annotated[str, _aws_string(r"[^:*]*")]
MetricsNamespace = Annotated[str, _aws_string(r"[a-zA-Z0-9._#/:-]+", 1, 255)]
DatasetId = Annotated[str, _aws_string(r"[a-zA-Z0-9_-]{1,110}")]
DatasetVersion = Annotated[str, _aws_string(r"(DRAFT|[0-9]{1,19})", 1, 19)]
AgentRuntimeEndpointArn = Annotated[
    str,
    _aws_string(
        r"arn:aws(-[^:]+)?:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:runtime/"
        r"[a-zA-Z][a-zA-Z0-9_]{0,47}-[a-zA-Z0-9]{10}/runtime-endpoint/[a-zA-Z][a-zA-Z0-9_]{0,47}"
    ),
]
RequestTemplate = Annotated[str, _aws_string(None, 0, 10_240)]


#: Evaluators whose results include cross-session insights (GetBatchEvaluation's
#: ``insightResults``; the AgentCore guide's "Insights in batch evaluation").
INSIGHT_EVALUATORS: Final = frozenset({"Builtin.FailureAnalysis"})


class ResultDestination(StrEnum):
    DEDICATED_LOG_GROUP = "DEDICATED_LOG_GROUP"
    SOURCE_LOG_GROUP = "SOURCE_LOG_GROUP"


class _Shape(BaseModel):
    """A structure of the AWS input shape: unknown members are rejected."""

    model_config = ConfigDict(extra="forbid", field_title_generator=lambda name, _info: name)


def _non_null(schema: dict[str, Any]) -> None:
    """Show a union member as its type only: absent is how a member is left out."""
    schema.pop("default", None)
    branches = [branch for branch in schema.pop("anyOf", []) if branch != {"type": "null"}]
    if branches:
        (branch,) = branches
        schema.update(branch)


class _Union(_Shape):
    """An AWS tagged union: exactly one member is set (``null`` counts as absent)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    @model_validator(mode="after")
    def _exactly_one_member(self) -> _Union:
        members = list(type(self).model_fields)
        given = [name for name in members if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "union_member_count",
                "Exactly one of {members} must be set, got {count}",
                {"members": ", ".join(members), "count": len(given)},
            )
        return self


class Evaluator(_Shape):
    evaluatorId: EvaluatorId


class Insight(_Shape):
    insightId: InsightId


class SessionFilterConfig(_Shape):
    """Time range of the sessions to evaluate (ISO 8601 timestamps, stored in UTC)."""

    startTime: UtcDatetime | None = None
    endTime: UtcDatetime | None = None


class SessionTraceIds(_Shape):
    sessionId: str
    traceIds: Annotated[list[TraceId], Field(min_length=1, max_length=100)]


class CloudWatchFilterConfig(_Shape):
    sessionIds: Annotated[list[str], Field(max_length=500)] | None = None
    timeRange: SessionFilterConfig | None = None
    sessionTraceIds: (
        Annotated[list[SessionTraceIds], Field(min_length=1, max_length=500)] | None
    ) = None


class CloudWatchLogsSource(_Shape):
    serviceNames: Annotated[list[str], Field(min_length=1, max_length=1)]
    logGroupNames: Annotated[list[LogGroupName], Field(max_length=10)] | None = None
    logGroupNamePrefixes: (
        Annotated[list[LogGroupNamePrefix], Field(min_length=1, max_length=5)] | None
    ) = None
    filterConfig: CloudWatchFilterConfig | None = None


class OnlineEvaluationConfigSource(_Shape):
    onlineEvaluationConfigArn: OnlineEvaluationConfigArn
    timeRange: SessionFilterConfig | None = None


class DataSourceConfig(_Union):
    """Where the session traces come from: exactly one source."""

    cloudWatchLogs: CloudWatchLogsSource | None = Field(None, json_schema_extra=_non_null)
    onlineEvaluationConfigSource: OnlineEvaluationConfigSource | None = Field(
        None, json_schema_extra=_non_null
    )


class EvaluationContent(_Union):
    text: EvaluationContentText | None = Field(None, json_schema_extra=_non_null)


class EvaluationExpectedTrajectory(_Shape):
    toolNames: Annotated[list[EvaluationToolName], Field(max_length=1000)] | None = None


class GroundTruthTurnInput(_Union):
    prompt: GroundTruthTurnInputPrompt | None = Field(None, json_schema_extra=_non_null)


class GroundTruthTurn(_Shape):
    input: GroundTruthTurnInput | None = None
    expectedResponse: EvaluationContent | None = None


class InlineGroundTruth(_Shape):
    assertions: Annotated[list[EvaluationContent], Field(min_length=1, max_length=100)] | None = (
        None
    )
    expectedTrajectory: EvaluationExpectedTrajectory | None = None
    turns: Annotated[list[GroundTruthTurn], Field(min_length=1)] | None = None


class GroundTruthSource(_Union):
    inline: InlineGroundTruth | None = Field(None, json_schema_extra=_non_null)


class SessionMetadataShape(_Shape):
    sessionId: str
    testScenarioId: str | None = None
    groundTruth: GroundTruthSource | None = None
    metadata: dict[str, str] | None = None


class EvaluationMetadata(_Union):
    sessionMetadata: Annotated[list[SessionMetadataShape], Field(max_length=500)] | None = Field(
        None, json_schema_extra=_non_null
    )


class CloudWatchOutputConfig(_Shape):
    logGroupName: OptionalLogGroupName | None = None
    logStreamName: LogStreamName | None = None
    metricsNamespace: MetricsNamespace | None = None
    resultDestination: ResultDestination | None = None


class OutputConfig(_Union):
    cloudWatchConfig: CloudWatchOutputConfig | None = Field(None, json_schema_extra=_non_null)


class DatasetSource(_Shape):
    datasetId: DatasetId
    datasetVersion: DatasetVersion | None = None


class AgentCoreRuntimeInvocation(_Shape):
    agentRuntimeEndpointArn: AgentRuntimeEndpointArn
    requestTemplate: RequestTemplate | None = None


class AgentInvocationConfig(_Union):
    agentCoreRuntime: AgentCoreRuntimeInvocation | None = Field(None, json_schema_extra=_non_null)


class DatasetExecutionConfig(_Shape):
    dataset: DatasetSource
    agentInvocation: AgentInvocationConfig


class AgentCoreEvaluation(_Shape):
    """StartBatchEvaluation parameters without ``clientToken``; ``batchEvaluationName`` optional."""

    batchEvaluationName: BatchEvaluationName | None = None
    evaluators: Annotated[list[Evaluator], Field(max_length=10)] | None = None
    insights: Annotated[list[Insight], Field(max_length=10)] | None = None
    dataSourceConfig: DataSourceConfig
    evaluationMetadata: EvaluationMetadata | None = None
    tags: (
        Annotated[dict[TagKey, TagValue], Field(max_length=50), KeyPatternInPropertyNames()] | None
    ) = None
    kmsKeyArn: KmsKeyArn | None = None
    description: BatchEvaluationDescription | None = None
    outputConfig: OutputConfig | None = None
    datasetExecutionConfig: DatasetExecutionConfig | None = None

    def to_boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``client.start_batch_evaluation(**kwargs)``.

        Absent members are left out; timestamps are ISO 8601 strings. The caller adds
        ``clientToken`` and, when the producer gave none, ``batchEvaluationName``.
        """
        return self.model_dump(mode="json", exclude_none=True)

    def reported_by_get_only(self) -> bool:
        """Whether part of this job's outcome comes only from GetBatchEvaluation, not from
        ListBatchEvaluations' summary: insight results (``insights``, or the
        ``insightResults`` of an insight-providing evaluator) or a dataset run's details."""
        evaluators = {e.evaluatorId for e in self.evaluators or []}
        return (
            bool(self.insights)
            or bool(evaluators & INSIGHT_EVALUATORS)
            or self.datasetExecutionConfig is not None
        )
