"""``ScenarioRun``: an agent run on scenarios before a batch evaluation of those sessions.

evalq invokes the harness once per item (InvokeHarness), reads each event stream to its
end, waits for the traces to be ingested, then starts the request's batch evaluation
naming exactly the sessions it ran, with each item's ground truth.

The message shapes are InvokeHarness's (``bedrock-agentcore`` ``HarnessMessage``), the ARN
and qualifier patterns its ``harnessArn`` and ``qualifier``, and ``ground_truth`` is a
``groundTruth`` of ``evaluationMetadata.sessionMetadata`` (StartBatchEvaluation), all
copied from the botocore models; ``tests/unit/contracts/test_aws_drift_scenarios.py``
fails when they and these classes disagree. Class names follow the AWS shape names.
"""

# ruff: noqa: N815  (field names are the AWS camelCase parameter names)

from __future__ import annotations

import base64
import math
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import AfterValidator, ConfigDict, Field, JsonValue, StrictInt, model_validator
from pydantic_core import PydanticCustomError

# The shared AWS-shape building blocks of agentcore.py (one definition for all models).
from api_contracts.agentcore import GroundTruthSource, _aws_string, _non_null, _Shape, _Union

#: Most items of one run: a batch evaluation names at most 500 sessions
#: (``filterConfig.sessionIds`` and ``evaluationMetadata.sessionMetadata``).
MAX_SCENARIO_ITEMS: Final = 500
#: Default wait between the last stream's end and the batch evaluation's start (seconds):
#: traces reach CloudWatch a few minutes after an invocation.
DEFAULT_INGESTION_DELAY_SECONDS: Final = 180
#: Longest ingestion wait a producer may ask for (6 hours).
MAX_INGESTION_DELAY_SECONDS: Final = 6 * 3600

HarnessArn = Annotated[
    str,
    _aws_string(
        r"arn:([^:]+)?:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:harness/"
        r"[a-zA-Z][a-zA-Z0-9_]{0,39}-[a-zA-Z0-9]{10}"
    ),
]
HarnessEndpointName = Annotated[str, _aws_string(r"[a-zA-Z][a-zA-Z0-9_]{0,47}")]
SensitiveText = Annotated[str, _aws_string(None, 1)]
HarnessToolName = Annotated[str, _aws_string(r"[a-zA-Z0-9_-]+", 1, 64)]
HarnessToolUseId = Annotated[str, _aws_string(r"[a-zA-Z0-9_-]+", 1, 64)]


class HarnessConversationRole(StrEnum):
    user = "user"
    assistant = "assistant"


class HarnessToolUseType(StrEnum):
    tool_use = "tool_use"
    server_tool_use = "server_tool_use"
    mcp_tool_use = "mcp_tool_use"


class HarnessToolUseStatus(StrEnum):
    success = "success"
    error = "error"


def _finite(value: JsonValue) -> JsonValue:
    """Refuse NaN and infinities (Python's json module reads them; JSON cannot carry them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Numbers must be finite")
    if isinstance(value, list):
        for item in value:
            _finite(item)
    elif isinstance(value, dict):
        for item in value.values():
            _finite(item)
    return value


#: A JSON document member (a tool's input, a JSON result, extra model fields).
Document = Annotated[JsonValue, AfterValidator(_finite)]


def _present(value: JsonValue) -> JsonValue:
    # ``input`` is required: JSON null would be sent as a missing member.
    if value is None:
        raise PydanticCustomError("missing_document", "Must be a JSON value other than null")
    return value


class HarnessToolUseBlock(_Shape):
    name: HarnessToolName
    toolUseId: HarnessToolUseId
    input: Annotated[Document, AfterValidator(_present)] = Field(
        description="The tool's input (any JSON value but null)."
    )
    type: HarnessToolUseType | None = None
    serverName: str | None = None


class HarnessToolResultContentBlock(_Union):
    model_config = ConfigDict(serialize_by_alias=True)

    text: SensitiveText | None = Field(None, json_schema_extra=_non_null)
    # ``json`` would shadow BaseModel.json: the field is json_, spelled json on the wire.
    json_: Document | None = Field(None, alias="json", json_schema_extra=_non_null)


class HarnessToolResultBlock(_Shape):
    toolUseId: HarnessToolUseId
    content: list[HarnessToolResultContentBlock]
    status: HarnessToolUseStatus | None = None
    type: HarnessToolUseType | None = None


class HarnessReasoningTextBlock(_Shape):
    text: str
    signature: str | None = None


class HarnessReasoningContentBlock(_Union):
    reasoningText: HarnessReasoningTextBlock | None = Field(None, json_schema_extra=_non_null)
    redactedContent: str | None = Field(
        None, json_schema_extra=_non_null, description="Base64 of the redacted bytes."
    )


class HarnessContentBlock(_Union):
    text: SensitiveText | None = Field(None, json_schema_extra=_non_null)
    toolUse: HarnessToolUseBlock | None = Field(None, json_schema_extra=_non_null)
    toolResult: HarnessToolResultBlock | None = Field(None, json_schema_extra=_non_null)
    reasoningContent: HarnessReasoningContentBlock | None = Field(None, json_schema_extra=_non_null)


class HarnessMessage(_Shape):
    role: HarnessConversationRole
    content: list[HarnessContentBlock]


class ScenarioItem(_Shape):
    """One scenario: what the agent is asked (a prompt, or whole messages), and how its
    session is described to the batch evaluation."""

    prompt: SensitiveText | None = Field(
        None, description="One user turn; evalq sends it as a single user text message."
    )
    messages: Annotated[list[HarnessMessage], Field(min_length=1)] | None = Field(
        None, description="InvokeHarness ``messages`` as boto3 spells them."
    )
    scenario_id: str | None = Field(None, description="Becomes the session's ``testScenarioId``.")
    ground_truth: GroundTruthSource | None = Field(
        None, description="Becomes the session's ``groundTruth`` (sessionMetadata)."
    )

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> ScenarioItem:
        if (self.prompt is None) == (self.messages is None):
            raise PydanticCustomError(
                "prompt_or_messages", "Exactly one of prompt, messages must be set"
            )
        return self

    def harness_messages(self) -> list[dict[str, Any]]:
        """InvokeHarness ``messages`` for this item, as boto3 takes them."""
        if self.prompt is not None:
            return [{"role": "user", "content": [{"text": self.prompt}]}]
        assert self.messages is not None
        messages = [
            m.model_dump(mode="json", exclude_none=True, by_alias=True) for m in self.messages
        ]
        for message in messages:
            for block in message["content"]:
                reasoning = block.get("reasoningContent") or {}
                if "redactedContent" in reasoning:  # a blob: boto3 takes the bytes
                    reasoning["redactedContent"] = base64.b64decode(reasoning["redactedContent"])
        return messages

    def session_metadata(self, session_id: str) -> dict[str, Any]:
        """The ``evaluationMetadata.sessionMetadata`` entry of this item's session."""
        entry: dict[str, Any] = {"sessionId": session_id}
        if self.scenario_id is not None:
            entry["testScenarioId"] = self.scenario_id
        if self.ground_truth is not None:
            entry["groundTruth"] = self.ground_truth.model_dump(mode="json", exclude_none=True)
        return entry


class ScenarioRun(_Shape):
    """The harness to run and the items to run it on (``EvaluationRequest.scenarios``)."""

    harnessArn: HarnessArn
    qualifier: HarnessEndpointName | None = Field(
        None, description="The harness endpoint to invoke (InvokeHarness ``qualifier``)."
    )
    items: Annotated[list[ScenarioItem], Field(min_length=1, max_length=MAX_SCENARIO_ITEMS)]
    ingestion_delay_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_INGESTION_DELAY_SECONDS)] = (
        Field(
            DEFAULT_INGESTION_DELAY_SECONDS,
            description="Seconds between the last stream's end and the batch evaluation's start.",
        )
    )
