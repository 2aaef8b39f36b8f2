"""``EvaluationOutcome``: the one message evalq publishes per request when it ends."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from api_contracts.common import (
    SCHEMA_ID_BASE,
    Backend,
    Correlation,
    JsonObject,
    ProducerName,
    RequestId,
    UtcDatetime,
)

#: Namespace of outcome event ids; never change it, consumers de-duplicate on them. It is
#: ``uuid5(NAMESPACE_URL, "https://evalq.internal/schemas/v1/evaluation-outcome.json#event_id")``.
EVENT_ID_NAMESPACE: Final = uuid.UUID("5a559cf2-0ab6-572f-96b2-21db8ff4873a")


class OutcomeStatus(StrEnum):
    """Final state of a request."""

    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    EXPIRED = "EXPIRED"  #: its deadline passed before the remote job could finish or start
    #: Added after version 1 shipped: its producer (or ops) cancelled it (``evals.cancel``);
    #: the outcome's ``error`` says what was done (stopped, deleted, or never started).
    CANCELLED = "CANCELLED"


def make_event_id(request_id: str, status: str) -> str:
    """Stable id of the outcome of ``request_id`` in final ``status`` (a uuid5 string).

    Raises ``ValueError`` when ``status`` is not an :class:`OutcomeStatus` value.
    """
    final = OutcomeStatus(status)
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{request_id}:{final.value}"))


class ScenarioItemOutcome(BaseModel):
    """What became of one item of ``EvaluationRequest.scenarios``."""

    model_config = ConfigDict(title="ScenarioItemOutcome")

    index: Annotated[StrictInt, Field(ge=0)] = Field(description="The item's place (from 0).")
    scenario_id: str | None = None
    session_id: str | None = Field(
        None, description="The session evaluated for this item (its last attempt's)."
    )
    stop_reason: str | None = Field(
        None, description="The harness's final messageStop reason; null if it never ended."
    )
    attempts: Annotated[StrictInt, Field(ge=0)] = Field(
        description="Invocations made (each under a new session id)."
    )
    error: str | None = Field(None, description="Why the item was left out, if it was.")


class EvaluationOutcome(BaseModel):
    """The outcome of one request, published on ``evals.results`` and each ``reply_to``."""

    model_config = ConfigDict(
        title="EvaluationOutcome",
        json_schema_extra={"$id": f"{SCHEMA_ID_BASE}evaluation-outcome.json"},
    )

    schema_version: Literal[1] = Field(1, description="Version of this contract.")
    event_id: str = Field(
        description="Stable per request and final status: consumers de-duplicate on it."
    )
    request_id: RequestId
    producer: ProducerName
    backend: Backend
    target: str | None = Field(None, description="The target (account and region) it ran in.")
    status: OutcomeStatus
    batch_evaluation_id: str | None = None
    batch_evaluation_arn: str | None = None
    batch_evaluation_name: str | None = None
    accepted_at: UtcDatetime = Field(description="When evalq accepted the request.")
    started_at: UtcDatetime | None = Field(None, description="When the remote job started.")
    finished_at: UtcDatetime | None = Field(None, description="When the remote job ended.")
    published_at: UtcDatetime = Field(description="When this outcome was published.")
    result: JsonObject | None = Field(None, description="The GetBatchEvaluation body.")
    error: str | None = Field(None, description="Why the job did not complete, if it did not.")
    correlation: Correlation = Field(
        default_factory=dict, description="The request's correlation map, echoed back."
    )
    scenarios: list[ScenarioItemOutcome] | None = Field(
        None, description="Per item of the request's scenarios, when it had any."
    )

    @staticmethod
    def make_event_id(request_id: str, status: str) -> str:
        """Same as :func:`api_contracts.outcome.make_event_id`."""
        return make_event_id(request_id, status)
