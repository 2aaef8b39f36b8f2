"""``CancelRequest``: a producer no longer wants one of its evaluations (task
``evals.cancel`` on ``evals.requests``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api_contracts.common import SCHEMA_ID_BASE, ProducerName, RequestId

#: Why the producer cancels: readable text, no control characters.
CancelReason = Annotated[
    str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1F\x7F-\x9F]*$")
]


class CancelRequest(BaseModel):
    """Cancel the request ``request_id`` of ``producer`` (contract version 1). A producer
    can cancel only its own requests; cancelling twice, or after the end, changes
    nothing."""

    model_config = ConfigDict(
        extra="forbid",
        title="CancelRequest",
        json_schema_extra={"$id": f"{SCHEMA_ID_BASE}cancel-request.json"},
    )

    schema_version: Literal[1] = Field(1, description="Version of this contract.")
    request_id: RequestId = Field(description="The request to cancel, as its producer sent it.")
    producer: ProducerName = Field(description="The producer that sent that request.")
    reason: CancelReason | None = Field(None, description="Why (echoed in the outcome's error).")
