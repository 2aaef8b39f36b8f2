"""``ScenarioRun``: an agent run on scenarios before a batch evaluation of those sessions.

evalq invokes the harness once per item (InvokeHarness), reads each event stream to its
end, waits for the traces to be ingested, then starts the request's batch evaluation
naming exactly the sessions it ran, with each item's ground truth.

The message shapes are InvokeHarness's (``bedrock-agentcore`` ``HarnessMessage``), the ARN
and qualifier patterns its ``harnessArn`` and ``qualifier``, the per-call overrides
(``model``, ``systemPrompt``, ``tools``, ``skills``, ...) its other members, and
``ground_truth`` is a ``groundTruth`` of ``evaluationMetadata.sessionMetadata``
(StartBatchEvaluation), all copied from the botocore models;
``tests/unit/contracts/test_aws_drift_scenarios.py`` fails when they and these classes
disagree. Class names follow the AWS shape names.

The overrides may be given per run and per item; an item's member replaces the run's
(whole: an item's ``tools`` is the call's tools list, not added to the run's).
"""

# ruff: noqa: N815  (field names are the AWS camelCase parameter names)

from __future__ import annotations

import base64
import math
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)
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
ApiKeyArn = Annotated[
    str,
    _aws_string(
        r"arn:aws:bedrock-agentcore:[a-z0-9-]+:[0-9]{12}:token-vault/[a-zA-Z0-9-.]+/"
        r"apikeycredentialprovider/[a-zA-Z0-9-.]+"
    ),
]
LongText = Annotated[str, _aws_string(None, 1, 16383)]
MaxTokens = Annotated[StrictInt, Field(ge=1)]
#: A JSON number in a range (ints accepted; booleans, strings and NaN refused).
Temperature = Annotated[StrictFloat, Field(ge=0.0, le=2.0, allow_inf_nan=False)]
TopP = Annotated[StrictFloat, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
TopK = Annotated[StrictInt, Field(ge=0, le=500)]
IamServiceName = Annotated[str, _aws_string(r"[a-zA-Z0-9._-]+", 1, 64)]
IamRegion = Annotated[str, _aws_string(r"[a-zA-Z0-9-]+", 1, 32)]
HarnessBrowserArn = Annotated[
    str,
    _aws_string(
        r"arn:aws(-[^:]+)?:bedrock-agentcore:[a-z0-9-]+:(aws|[0-9]{12}):browser(-custom)?/"
        r"(aws\.browser\.v1|[a-zA-Z][a-zA-Z0-9_]{0,47}-[a-zA-Z0-9]{10})"
    ),
]
GatewayArn = Annotated[
    str,
    _aws_string(
        r"arn:aws(|-cn|-us-gov):bedrock-agentcore:[a-z0-9-]{1,20}:[0-9]{12}:gateway/"
        r"([0-9a-z][-]?){1,48}-[a-z0-9]{10}"
    ),
]
OAuthCredentialProviderArn = Annotated[
    str, _aws_string(r"arn:([^:]*):([^:]*):([^:]*):([0-9]{12})?:(.+)")
]
OAuthScope = Annotated[str, _aws_string(None, 1, 64)]
OAuthCustomParametersKey = Annotated[str, _aws_string(None, 1, 256)]
OAuthCustomParametersValue = Annotated[str, _aws_string(None, 1, 2048)]
OAuthDefaultReturnUrl = Annotated[str, _aws_string(r"\w+:(\/?\/?)[^\s]+", 1, 2048)]
HarnessInlineFunctionDescription = Annotated[str, _aws_string(None, 1, 4096)]
HarnessCodeInterpreterArn = Annotated[
    str,
    _aws_string(
        r"arn:aws(-[^:]+)?:bedrock-agentcore:[a-z0-9-]+:(aws|[0-9]{12}):code-interpreter"
        r"(-custom)?/(aws\.codeinterpreter\.v1|[a-zA-Z][a-zA-Z0-9_]{0,47}-[a-zA-Z0-9]{10})"
    ),
]
HarnessSkillPath = Annotated[str, _aws_string(None, 1, 4096)]
HarnessSkillS3Uri = Annotated[str, _aws_string(r"s3://.*", 5, 16383)]
#: A git source is an https URL without a fragment or credentials (``#``, ``@``).
HarnessSkillGitUrl = Annotated[str, _aws_string(r"https://[^#@]+", 8, 16383)]
HarnessAwsSkillPath = Annotated[str, _aws_string(r"([^*?\[\]]|\*)+", 1, 4096)]
HarnessAllowedTool = Annotated[str, _aws_string(r"(\*|@?[^/]+(/[^/]+)?)", 1, 64)]
#: ``runtimeUserId`` travels in an HTTP header, which cannot carry control characters
#: (botocore refuses to send one after the call began): refused here instead. The only
#: constraint evalq adds to the service model's.
RuntimeUserId = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1F\x7F]*$")]


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


# --- InvokeHarness's per-call overrides -------------------------------------------------


class HarnessBedrockApiFormat(StrEnum):
    converse_stream = "converse_stream"
    responses = "responses"
    chat_completions = "chat_completions"


class HarnessOpenAiApiFormat(StrEnum):
    chat_completions = "chat_completions"
    responses = "responses"


class HarnessBedrockModelConfig(_Shape):
    modelId: str
    maxTokens: MaxTokens | None = None
    temperature: Temperature | None = None
    topP: TopP | None = None
    apiFormat: HarnessBedrockApiFormat | None = None
    additionalParams: Document | None = None


class HarnessOpenAiModelConfig(_Shape):
    modelId: str
    apiKeyArn: ApiKeyArn
    apiBase: LongText | None = None
    maxTokens: MaxTokens | None = None
    temperature: Temperature | None = None
    topP: TopP | None = None
    apiFormat: HarnessOpenAiApiFormat | None = None
    additionalParams: Document | None = None


class HarnessGeminiModelConfig(_Shape):
    modelId: str
    apiKeyArn: ApiKeyArn
    maxTokens: MaxTokens | None = None
    temperature: Temperature | None = None
    topP: TopP | None = None
    topK: TopK | None = None
    additionalParams: Document | None = None


class HarnessLiteLlmModelConfig(_Shape):
    modelId: str
    apiKeyArn: ApiKeyArn | None = None
    apiBase: LongText | None = None
    maxTokens: MaxTokens | None = None
    temperature: Temperature | None = None
    topP: TopP | None = None
    additionalParams: Document | None = None


class HarnessModelConfiguration(_Union):
    bedrockModelConfig: HarnessBedrockModelConfig | None = Field(None, json_schema_extra=_non_null)
    openAiModelConfig: HarnessOpenAiModelConfig | None = Field(None, json_schema_extra=_non_null)
    geminiModelConfig: HarnessGeminiModelConfig | None = Field(None, json_schema_extra=_non_null)
    liteLlmModelConfig: HarnessLiteLlmModelConfig | None = Field(None, json_schema_extra=_non_null)


class HarnessSystemContentBlock(_Union):
    text: SensitiveText | None = Field(None, json_schema_extra=_non_null)


class HarnessToolType(StrEnum):
    remote_mcp = "remote_mcp"
    agentcore_browser = "agentcore_browser"
    agentcore_gateway = "agentcore_gateway"
    inline_function = "inline_function"
    agentcore_code_interpreter = "agentcore_code_interpreter"


class Unit(_Shape):
    """An empty structure: a union member that is chosen by being present (``{}``)."""


class IamCredentialProvider(_Shape):
    service: IamServiceName
    region: IamRegion | None = None


class HarnessRemoteMcpOutboundAuth(_Union):
    awsIam: IamCredentialProvider | None = Field(None, json_schema_extra=_non_null)
    none: Unit | None = Field(None, json_schema_extra=_non_null)


class HarnessRemoteMcpConfig(_Shape):
    url: LongText
    headers: dict[LongText, LongText] | None = None
    outboundAuth: HarnessRemoteMcpOutboundAuth | None = None


class HarnessAgentCoreBrowserConfig(_Shape):
    browserArn: HarnessBrowserArn | None = None


class OAuthGrantType(StrEnum):
    CLIENT_CREDENTIALS = "CLIENT_CREDENTIALS"
    AUTHORIZATION_CODE = "AUTHORIZATION_CODE"
    TOKEN_EXCHANGE = "TOKEN_EXCHANGE"  # noqa: S105 (a grant type, not a secret)


class OAuthCredentialProvider(_Shape):
    providerArn: OAuthCredentialProviderArn
    scopes: Annotated[list[OAuthScope], Field(max_length=100)]
    customParameters: (
        Annotated[
            dict[OAuthCustomParametersKey, OAuthCustomParametersValue],
            Field(min_length=1, max_length=10),
        ]
        | None
    ) = None
    grantType: OAuthGrantType | None = None
    defaultReturnUrl: OAuthDefaultReturnUrl | None = None


class HarnessGatewayOutboundAuth(_Union):
    awsIam: Unit | None = Field(None, json_schema_extra=_non_null)
    none: Unit | None = Field(None, json_schema_extra=_non_null)
    oauth: OAuthCredentialProvider | None = Field(None, json_schema_extra=_non_null)


class HarnessAgentCoreGatewayConfig(_Shape):
    gatewayArn: GatewayArn
    outboundAuth: HarnessGatewayOutboundAuth | None = None


class HarnessInlineFunctionConfig(_Shape):
    description: HarnessInlineFunctionDescription
    inputSchema: Annotated[Document, AfterValidator(_present)] = Field(
        description="JSON Schema of the tool's input (any JSON value but null)."
    )


class HarnessAgentCoreCodeInterpreterConfig(_Shape):
    codeInterpreterArn: HarnessCodeInterpreterArn | None = None


class HarnessToolConfiguration(_Union):
    remoteMcp: HarnessRemoteMcpConfig | None = Field(None, json_schema_extra=_non_null)
    agentCoreBrowser: HarnessAgentCoreBrowserConfig | None = Field(
        None, json_schema_extra=_non_null
    )
    agentCoreGateway: HarnessAgentCoreGatewayConfig | None = Field(
        None, json_schema_extra=_non_null
    )
    inlineFunction: HarnessInlineFunctionConfig | None = Field(None, json_schema_extra=_non_null)
    agentCoreCodeInterpreter: HarnessAgentCoreCodeInterpreterConfig | None = Field(
        None, json_schema_extra=_non_null
    )


class HarnessTool(_Shape):
    type: HarnessToolType
    name: HarnessToolName | None = None
    config: HarnessToolConfiguration | None = None


class HarnessSkillS3Source(_Shape):
    uri: HarnessSkillS3Uri


class HarnessSkillGitAuth(_Shape):
    credentialArn: ApiKeyArn
    username: str | None = None


class HarnessSkillGitSource(_Shape):
    url: HarnessSkillGitUrl
    path: str | None = None
    auth: HarnessSkillGitAuth | None = None


class HarnessSkillAwsSkillsSource(_Shape):
    paths: list[HarnessAwsSkillPath] | None = Field(
        None, description="Glob filters of the allowed AWS Skills, e.g. core-skills/*."
    )


class HarnessSkill(_Union):
    path: HarnessSkillPath | None = Field(None, json_schema_extra=_non_null)
    s3: HarnessSkillS3Source | None = Field(None, json_schema_extra=_non_null)
    git: HarnessSkillGitSource | None = Field(None, json_schema_extra=_non_null)
    awsSkills: HarnessSkillAwsSkillsSource | None = Field(None, json_schema_extra=_non_null)


class HarnessOverrides(_Shape):
    """InvokeHarness's per-call overrides of the harness's defaults, as boto3 spells them;
    each member left out (or null) keeps the harness's own."""

    model: HarnessModelConfiguration | None = Field(
        None, description="The model for this call (exactly one provider's config)."
    )
    systemPrompt: list[HarnessSystemContentBlock] | None = Field(
        None, description="The system prompt for this call."
    )
    tools: list[HarnessTool] | None = Field(None, description="The tools for this call.")
    skills: list[HarnessSkill] | None = Field(None, description="The skills for this call.")
    allowedTools: list[HarnessAllowedTool] | None = Field(
        None, description="The tools the agent may use (names, server/tool, or *)."
    )
    maxIterations: StrictInt | None = Field(None, description="Most agent loop iterations.")
    maxTokens: StrictInt | None = Field(None, description="Most tokens per iteration.")
    timeoutSeconds: StrictInt | None = Field(None, description="Longest agent loop, seconds.")
    actorId: str | None = Field(None, description="The actor id for memory operations.")
    runtimeUserId: RuntimeUserId | None = Field(
        None, description="The end user's id, passed to the runtime container (a header)."
    )

    def harness_overrides(self) -> dict[str, Any]:
        """The overrides given here, as boto3 takes them (members left out are absent;
        a null inside a JSON document stays)."""
        given: dict[str, Any] = self.model_dump(
            mode="json", include=set(OVERRIDE_FIELDS), exclude_none=True
        )
        return given


#: The override members (InvokeHarness members a run or an item may carry).
OVERRIDE_FIELDS: Final = tuple(HarnessOverrides.model_fields)


def drop_unset_overrides(run: dict[str, Any]) -> None:
    """Remove the override members left unset from a dumped run and its items: absent from
    the canonical JSON of a request, they keep the hash it had before they existed."""
    for node in (run, *(run.get("items") or [])):
        for name in OVERRIDE_FIELDS:
            if node.get(name) is None:
                node.pop(name, None)


class ScenarioItem(HarnessOverrides):
    """One scenario: what the agent is asked (a prompt, or whole messages), how its
    session is described to the batch evaluation, and InvokeHarness overrides for its
    call (each replaces the run's)."""

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


class ScenarioRun(HarnessOverrides):
    """The harness to run, the items to run it on (``EvaluationRequest.scenarios``), and
    InvokeHarness overrides for every item's call (an item may replace each)."""

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

    def harness_overrides_for(self, index: int) -> dict[str, Any]:
        """The overrides of item ``index``'s call: the run's, each member the item gives
        replaced by the item's."""
        return {**self.harness_overrides(), **self.items[index].harness_overrides()}
