"""``EvaluationRequest``: what a producer puts on ``evals.requests`` (task ``evals.submit``)."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt
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

#: Longest deadline a producer may ask for (30 days).
MAX_DEADLINE_SECONDS: Final = 30 * 24 * 3600
#: Longest time a finished remote job may be kept before deletion (365 days).
MAX_RETENTION_SECONDS: Final = 365 * 24 * 3600
#: Most extra result queues per request.
MAX_REPLY_TO: Final = 10

#: Fields added to version 1 after it shipped. Absent or null, they stay out of the
#: canonical JSON, so a request sent before they existed keeps its payload hash (and its
#: job) across the upgrade.
ADDED_OPTIONAL_FIELDS: Final = frozenset({"target"})

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
    target: TargetName | None = Field(
        None,
        description="The target (account and region) to run in; unset: evalq routes the "
        "request by its log groups, service name or online evaluation config.",
    )

    def canonical_json(self) -> str:
        """The request as canonical JSON (sorted keys, no whitespace, defaults filled in),
        without ``submitted_at``: a producer's retry of the same request carries a new send
        time and must still count as the same request. Fields added later are left out
        while unset (``ADDED_OPTIONAL_FIELDS``)."""
        data = self.model_dump(mode="json", exclude={"submitted_at"})
        for name in ADDED_OPTIONAL_FIELDS:
            if data.get(name) is None:
                data.pop(name, None)
        return json.dumps(
            data,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def payload_hash(self) -> str:
        """sha256 hex of :meth:`canonical_json`: equal for equal requests, else different."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
