"""``DeadLetter``: a request evalq could not carry out, kept so that ops can replay it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from api_contracts.common import SCHEMA_ID_BASE, JsonObject, UtcDatetime, jsonable


class ReasonCode(StrEnum):
    """Stable codes for why a request was dead-lettered (alerts and dashboards key on them)."""

    invalid_request = "invalid_request"  #: the request does not match the contract
    idempotency_conflict = "idempotency_conflict"  #: request_id reused with another payload
    unknown_backend = "unknown_backend"  #: ``backend`` names no backend evalq knows
    undecodable_message = "undecodable_message"  #: the message body could not be decoded
    unsupported_content_type = "unsupported_content_type"  #: not JSON
    payload_too_large = "payload_too_large"  #: the message exceeds the size limit
    bad_task_signature = "bad_task_signature"  #: wrong task arguments (not ``request=``)
    access_denied = "access_denied"  #: the remote service denied access (403)
    unauthorized = "unauthorized"  #: the credentials were rejected (401)
    remote_validation = "remote_validation"  #: the remote service rejected the parameters
    remote_conflict = "remote_conflict"  #: the remote service reported a conflict (409)
    retries_exhausted = "retries_exhausted"  #: transient failures outlasted the retry budget
    internal_error = "internal_error"  #: a bug in evalq
    # Codes added after version 1 shipped come last: the order above is stable.
    no_target = "no_target"  #: no target takes the request (none named, none matches)
    #: the evaluator is locked by an enabled online evaluation configuration (named in
    #: the error); disable that configuration, then replay
    evaluator_locked = "evaluator_locked"
    #: the task may not be sent to the queue it came on (a producer's queue runs the
    #: public task names only: docs/security.md)
    forbidden_task = "forbidden_task"
    #: the message nests lists and objects deeper than evalq reads
    payload_too_deep = "payload_too_deep"
    #: the producer may not ask this (unlisted, another producer's broker user, a
    #: priority above its highest, evaluator rollouts): docs/security.md
    producer_not_allowed = "producer_not_allowed"
    #: the producer already has as many requests waiting in the target as it may
    producer_quota = "producer_quota"
    #: the broker refuses the outcome on the results queue (it is not a queue it can
    #: write): fix the broker, then replay (the outcome is published again)
    publish_refused = "publish_refused"


NonNegativeInt = Annotated[StrictInt, Field(ge=0)]

#: The original request: a JSON object when it parsed, else the raw text.
OriginalRequest = Annotated[dict[str, Any] | str | None, BeforeValidator(jsonable)]


class DeadLetter(BaseModel):
    """One dead-lettered request."""

    model_config = ConfigDict(
        title="DeadLetter",
        json_schema_extra={"$id": f"{SCHEMA_ID_BASE}dead-letter.json"},
    )

    schema_version: Literal[1] = Field(1, description="Version of this contract.")
    dead_letter_id: str
    reason: ReasonCode
    error: str = Field(description="Readable explanation of the failure.")
    request: OriginalRequest = Field(
        None, description="The original request; the raw text when it did not parse."
    )
    request_id: str | None = None
    task_name: str | None = None
    worker_host: str | None = None
    attempts: NonNegativeInt = Field(description="Attempts made before giving up.")
    first_failed_at: UtcDatetime
    last_failed_at: UtcDatetime
    replay_count: NonNegativeInt = Field(0, description="Times ops replayed this request.")
    # Added after version 1 shipped (absent from older entries).
    job_state: str | None = Field(
        None,
        description="The state the job was in when it failed (a replay takes it back there: "
        "a job whose remote run exists resumes it, never starts another).",
    )
    outcome: JsonObject | None = Field(
        None,
        description="The job's outcome when it failed after its end was known: published "
        "already (its remote delete failed) or not yet (its publication failed).",
    )
