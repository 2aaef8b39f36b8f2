"""``EvaluatorUpdateRequest`` / ``EvaluatorUpdateOutcome``: a rollout of a custom evaluator's
new judge (task ``evals.evaluator.update`` on ``evals.requests``).

``update`` holds the UpdateEvaluator parameters exactly as boto3 spells them, without
``clientToken`` (evalq derives it from ``request_id``) and ``evaluatorId`` (the request's
``evaluator_id``). Every constraint is copied from the botocore model of
``bedrock-agentcore-control``; ``tests/unit/contracts/test_aws_drift_evaluator.py`` fails
when the model and these classes disagree. Class names follow the AWS shape names.
"""

# ruff: noqa: N815  (field names are the AWS camelCase parameter names)

from __future__ import annotations

import hashlib
import json
import uuid
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

# The shared AWS-shape building blocks of agentcore.py (one definition for all models).
from api_contracts.agentcore import (
    _CUSTOM_ID,
    EvaluatorId,
    KmsKeyArn,
    _aws_string,
    _non_null,
    _Shape,
    _Union,
)
from api_contracts.common import (
    SCHEMA_ID_BASE,
    Correlation,
    JsonObject,
    ProducerName,
    RequestId,
    UtcDatetime,
)
from api_contracts.request import ReplyTo, TargetName
from api_contracts.scenarios import Document

#: Namespace of evaluator-update outcome event ids; never change it. It is
#: ``uuid5(NAMESPACE_URL, "https://evalq.internal/schemas/v1/evaluator-update-outcome.json#event_id")``.
EVENT_ID_NAMESPACE: Final = uuid.UUID("7e3bd8f9-a56d-5a8b-ad96-936460392b6e")

#: A custom evaluator's id: built-in (``Builtin.*``) and third-party (``ThirdParty.*``)
#: evaluators cannot be updated, so their ids are refused here.
CustomEvaluatorId = Annotated[str, _aws_string(_CUSTOM_ID, 1, 111)]

EvaluatorDescription = Annotated[str, _aws_string(None, 1, 200)]
NumericalScaleLabel = Annotated[str, _aws_string(None, 1, 100)]
CategoricalScaleLabel = Annotated[str, _aws_string(None, 1, 100)]
EvaluationDimensionName = Annotated[str, _aws_string(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")]
EvaluationDimensionInstruction = Annotated[str, _aws_string(None, 1, 4000)]
NonEmptyString = Annotated[str, _aws_string(None, 1)]
ReasoningEffort = Annotated[str, _aws_string(None, 1, 64)]
LambdaArn = Annotated[
    str,
    _aws_string(
        r"arn:(aws[a-zA-Z-]*)?:lambda:([a-z]{2}(-gov)?-[a-z]+-\d{1}):(\d{12}):function:"
        r"([a-zA-Z0-9-_.]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
    ),
]
#: A JSON number (ints accepted, booleans and strings refused).
Number = StrictFloat


class EvaluatorLevel(StrEnum):
    TOOL_CALL = "TOOL_CALL"
    TRACE = "TRACE"
    SESSION = "SESSION"


class NumericalScaleDefinition(_Shape):
    definition: str
    value: Annotated[Number, Field(ge=0)]
    label: NumericalScaleLabel


class CategoricalScaleDefinition(_Shape):
    definition: str
    label: CategoricalScaleLabel


class DimensionRatingScale(_Union):
    numerical: list[NumericalScaleDefinition] | None = Field(None, json_schema_extra=_non_null)
    categorical: list[CategoricalScaleDefinition] | None = Field(None, json_schema_extra=_non_null)


class EvaluationDimension(_Shape):
    dimensionName: EvaluationDimensionName
    dimensionInstruction: EvaluationDimensionInstruction
    dimensionRatingScale: DimensionRatingScale


class RatingScale(_Union):
    numerical: list[NumericalScaleDefinition] | None = Field(None, json_schema_extra=_non_null)
    categorical: list[CategoricalScaleDefinition] | None = Field(None, json_schema_extra=_non_null)
    multiDimensional: (
        Annotated[list[EvaluationDimension], Field(min_length=1, max_length=50)] | None
    ) = Field(None, json_schema_extra=_non_null)


class InferenceConfiguration(_Shape):
    maxTokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[Number, Field(ge=0, le=1)] | None = None
    topP: Annotated[Number, Field(ge=0, le=1)] | None = None
    stopSequences: Annotated[list[NonEmptyString], Field(max_length=2500)] | None = None


class BedrockEvaluatorModelConfig(_Shape):
    modelId: str
    inferenceConfig: InferenceConfiguration | None = None
    additionalModelRequestFields: Document | None = None


class ReasoningConfiguration(_Shape):
    effort: ReasoningEffort | None = None


class OpenResponsesEvaluatorModelConfig(_Shape):
    modelId: str
    maxOutputTokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[Number, Field(ge=0, le=2)] | None = None
    topP: Annotated[Number, Field(ge=0, le=1)] | None = None
    reasoning: ReasoningConfiguration | None = None


class EvaluatorModelConfig(_Union):
    bedrockEvaluatorModelConfig: BedrockEvaluatorModelConfig | None = Field(
        None, json_schema_extra=_non_null
    )
    responsesEvaluatorModelConfig: OpenResponsesEvaluatorModelConfig | None = Field(
        None, json_schema_extra=_non_null
    )


class LlmAsAJudgeEvaluatorConfig(_Shape):
    instructions: str
    ratingScale: RatingScale
    modelConfig: EvaluatorModelConfig


class LambdaEvaluatorConfig(_Shape):
    lambdaArn: LambdaArn
    lambdaTimeoutInSeconds: Annotated[StrictInt, Field(ge=1, le=300)] | None = None


class CodeBasedEvaluatorConfig(_Union):
    lambdaConfig: LambdaEvaluatorConfig | None = Field(None, json_schema_extra=_non_null)


class DerivedEvaluatorConfig(_Shape):
    baseEvaluatorId: EvaluatorId
    modelConfig: EvaluatorModelConfig


class EvaluatorConfig(_Union):
    """The judge: an LLM with instructions and a scale, a Lambda, or a derived built-in."""

    llmAsAJudge: LlmAsAJudgeEvaluatorConfig | None = Field(None, json_schema_extra=_non_null)
    codeBased: CodeBasedEvaluatorConfig | None = Field(None, json_schema_extra=_non_null)
    derived: DerivedEvaluatorConfig | None = Field(None, json_schema_extra=_non_null)


class EvaluatorUpdate(_Shape):
    """UpdateEvaluator parameters without ``clientToken`` and ``evaluatorId``; at least one
    is set (an update that changes nothing would still drain the evaluator's jobs)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    description: EvaluatorDescription | None = None
    evaluatorConfig: EvaluatorConfig | None = None
    level: EvaluatorLevel | None = None
    kmsKeyArn: KmsKeyArn | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> EvaluatorUpdate:
        if not self.model_dump(exclude_none=True):
            raise PydanticCustomError(
                "empty_update",
                "Set at least one of description, evaluatorConfig, level, kmsKeyArn",
            )
        return self

    def to_boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``update_evaluator`` (the caller adds ``evaluatorId`` and
        ``clientToken``)."""
        return self.model_dump(mode="json", exclude_none=True)


def _refuse_managed_evaluators(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(("Builtin.", "ThirdParty.")):
        raise PydanticCustomError(
            "managed_evaluator",
            "{evaluator} is a built-in or third-party evaluator: it cannot be updated",
            {"evaluator": value},
        )
    return value


class EvaluatorUpdateRequest(BaseModel):
    """A rollout of a custom evaluator's new configuration (contract version 1)."""

    model_config = ConfigDict(
        extra="forbid",
        title="EvaluatorUpdateRequest",
        json_schema_extra={"$id": f"{SCHEMA_ID_BASE}evaluator-update-request.json"},
    )

    schema_version: Literal[1] = Field(1, description="Version of this contract.")
    request_id: RequestId = Field(
        description="The producer's idempotency key; the UpdateEvaluator clientToken derives "
        "from it."
    )
    producer: ProducerName = Field(description="Name of the calling service.")
    evaluator_id: CustomEvaluatorId = Field(description="The custom evaluator to update.")
    update: EvaluatorUpdate = Field(
        description="UpdateEvaluator parameters as boto3 spells them, without clientToken."
    )
    drain: bool = Field(
        True,
        description="Stop admitting jobs that use the evaluator and wait for its running "
        "ones to end before updating, so no batch mixes two versions of the judge.",
    )
    reply_to: ReplyTo = Field(
        default_factory=list, description="Extra queues the outcome is published to."
    )
    correlation: Correlation = Field(
        default_factory=dict, description="Small str->str map echoed back in the outcome."
    )
    target: TargetName | None = Field(
        None,
        description="The target (account and region) whose evaluator this is, and whose "
        "jobs are drained; unset: evalq's default target.",
    )

    @field_validator("evaluator_id", mode="before")
    @classmethod
    def _managed_evaluators_are_not_updatable(cls, value: Any) -> Any:
        return _refuse_managed_evaluators(value)

    def payload_hash(self) -> str:
        """sha256 hex of the request as canonical JSON (sorted keys, defaults filled in):
        equal for equal requests, else different (idempotency by ``request_id``)."""
        data = self.model_dump(mode="json")
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EvaluatorUpdateStatus(StrEnum):
    """Final state of an evaluator rollout."""

    UPDATED = "UPDATED"  #: GetEvaluator said ACTIVE after the update
    UPDATE_FAILED = "UPDATE_FAILED"  #: GetEvaluator said UPDATE_FAILED, or the call failed


def make_evaluator_update_event_id(request_id: str, status: str) -> str:
    """Stable id of the outcome of rollout ``request_id`` in final ``status`` (uuid5)."""
    final = EvaluatorUpdateStatus(status)
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{request_id}:{final.value}"))


class EvaluatorUpdateOutcome(BaseModel):
    """The outcome of one rollout, on ``evals.evaluator-updates`` and each ``reply_to``."""

    model_config = ConfigDict(
        title="EvaluatorUpdateOutcome",
        json_schema_extra={"$id": f"{SCHEMA_ID_BASE}evaluator-update-outcome.json"},
    )

    schema_version: Literal[1] = Field(1, description="Version of this contract.")
    event_id: str = Field(
        description="Stable per request and final status: consumers de-duplicate on it."
    )
    request_id: RequestId
    producer: ProducerName
    evaluator_id: str
    status: EvaluatorUpdateStatus
    evaluator: JsonObject | None = Field(None, description="The GetEvaluator body.")
    accepted_at: UtcDatetime = Field(description="When evalq accepted the request.")
    update_called_at: UtcDatetime | None = Field(
        None, description="When UpdateEvaluator was called (after the drain)."
    )
    active_at: UtcDatetime | None = Field(
        None, description="When GetEvaluator was first seen ACTIVE after the update."
    )
    published_at: UtcDatetime = Field(description="When this outcome was published.")
    error: str | None = Field(None, description="Why the update did not become ACTIVE.")
    correlation: Correlation = Field(
        default_factory=dict, description="The request's correlation map, echoed back."
    )

    @staticmethod
    def make_event_id(request_id: str, status: str) -> str:
        """Same as :func:`make_evaluator_update_event_id`."""
        return make_evaluator_update_event_id(request_id, status)
