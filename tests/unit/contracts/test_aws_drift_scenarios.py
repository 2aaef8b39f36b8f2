"""ScenarioRun against the botocore models: InvokeHarness's messages, harnessArn,
qualifier and per-call overrides (per run and per item); StartBatchEvaluation's
groundTruth; and the rules of a request with scenarios."""

from __future__ import annotations

import functools
from typing import Any

import boto3
import pytest
from botocore.validate import ParamValidator

from api_contracts import EvaluationRequest, ScenarioRun
from api_contracts.examples import sample_request
from api_contracts.scenarios import OVERRIDE_FIELDS, HarnessMessage, HarnessOverrides

from . import drift
from .helpers import assert_rejected, assert_valid

HARNESS = "arn:aws:bedrock-agentcore:us-east-1:123456789012:harness/support_bot-abcdefghij"
CW = "evaluation.dataSourceConfig.cloudWatchLogs"


@functools.cache
def invoke_shape() -> Any:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    return client.meta.service_model.operation_model("InvokeHarness").input_shape


@functools.cache
def start_shape() -> Any:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    return client.meta.service_model.operation_model("StartBatchEvaluation").input_shape


MESSAGE_VIEW = drift.SchemaView(HarnessMessage.model_json_schema())
MESSAGE_NODES = list(drift.walk(invoke_shape().members["messages"].member))
RUN_SCHEMA = ScenarioRun.model_json_schema()


#: InvokeHarness members that are not overrides: the run's own (harnessArn, qualifier),
#: what evalq fills per call (the session id, the item's messages), and the tracing
#: headers, which evalq does not take from producers.
NOT_OVERRIDES = frozenset(
    {
        "harnessArn", "qualifier", "runtimeSessionId", "messages",
        "traceParent", "traceState", "traceId", "baggage",
    }
)  # fmt: skip
#: Where evalq is stricter than the model: runtimeUserId is an HTTP header, which cannot
#: carry control characters (botocore fails the call once it is under way).
STRICTER = {("runtimeUserId",): "pattern"}
OVERRIDES_VIEW = drift.SchemaView(HarnessOverrides.model_json_schema())
OVERRIDE_NODES = list(drift.walk(invoke_shape(), NOT_OVERRIDES))


@pytest.mark.parametrize("node", MESSAGE_NODES, ids=[n.id for n in MESSAGE_NODES])
def test_harness_message_matches_the_aws_shape(node: drift.Node) -> None:
    assert drift.problems(MESSAGE_VIEW, node) == []


def test_harness_arn_and_qualifier_are_invoke_harness_s() -> None:
    view = drift.SchemaView(RUN_SCHEMA)
    for ours, theirs in (("harnessArn", "harnessArn"), ("qualifier", "qualifier")):
        node = drift.Node((ours,), invoke_shape().members[theirs])
        assert drift.problems(view, node) == []


def test_the_overrides_are_every_other_invoke_harness_member() -> None:
    assert set(OVERRIDE_FIELDS) == set(invoke_shape().members) - NOT_OVERRIDES
    assert set(OVERRIDE_FIELDS) == {
        "model", "systemPrompt", "tools", "skills", "allowedTools", "maxIterations",
        "maxTokens", "timeoutSeconds", "actorId", "runtimeUserId",
    }  # fmt: skip
    assert len(OVERRIDE_NODES) > 90


def _override_problems(
    view: drift.SchemaView, root: tuple[str, ...], node: drift.Node
) -> list[str]:
    found = drift.problems(view, drift.Node(root + node.path, node.shape), NOT_OVERRIDES)
    if node.path in STRICTER:
        kind = STRICTER[node.path]
        assert len(found) == 1, found
        assert f": {kind} is " in found[0], found
        return []
    return found


@pytest.mark.parametrize("node", OVERRIDE_NODES, ids=[n.id for n in OVERRIDE_NODES])
def test_overrides_match_the_aws_shape(node: drift.Node) -> None:
    assert _override_problems(OVERRIDES_VIEW, (), node) == []


@pytest.mark.parametrize("root", [(), ("items", "[]")], ids=["run", "item"])
def test_runs_and_items_carry_the_overrides(root: tuple[str, ...]) -> None:
    view = drift.SchemaView(RUN_SCHEMA)
    for node in OVERRIDE_NODES:
        if node.path:  # the root structure is the run's or the item's own
            assert _override_problems(view, root, node) == [], node.id


def test_ground_truth_is_session_metadata_s() -> None:
    shape = start_shape().members["evaluationMetadata"].members["sessionMetadata"].member
    view = drift.SchemaView(RUN_SCHEMA)
    root = ("items", "[]", "ground_truth")
    for node in drift.walk(shape.members["groundTruth"]):
        assert drift.problems(view, drift.Node(root + node.path, node.shape)) == []


def scenario_request(**scenarios: Any) -> dict[str, Any]:
    request = sample_request()
    request["scenarios"] = {"harnessArn": HARNESS, "items": [{"prompt": "hi"}], **scenarios}
    return request


def test_a_scenario_request_and_its_defaults() -> None:
    parsed = EvaluationRequest.model_validate(scenario_request())
    assert parsed.scenarios is not None
    assert parsed.scenarios.ingestion_delay_seconds == 180
    assert parsed.scenarios.qualifier is None
    assert '"scenarios"' in parsed.canonical_json()


@pytest.mark.parametrize(
    ("items", "path"),
    [
        ([], "scenarios.items"),
        ([{"prompt": "p"}] * 501, "scenarios.items"),
        ([{}], "scenarios.items.0"),
        (
            [{"prompt": "p", "messages": [{"role": "user", "content": [{"text": "p"}]}]}],
            "scenarios.items.0",
        ),
        ([{"prompt": ""}], "scenarios.items.0.prompt"),
        ([{"messages": []}], "scenarios.items.0.messages"),
        ([{"messages": [{"role": "system", "content": []}]}], "scenarios.items.0.messages.0.role"),
        (
            [{"messages": [{"role": "user", "content": [{}]}]}],
            "scenarios.items.0.messages.0.content.0",
        ),
        (
            [{"messages": [{"role": "user", "content": [{"text": ""}]}]}],
            "scenarios.items.0.messages.0.content.0.text",
        ),
        (
            [{"prompt": "p", "ground_truth": {"inline": {"assertions": []}}}],
            "scenarios.items.0.ground_truth.inline.assertions",
        ),
        ([{"prompt": "p", "clientToken": "x"}], "scenarios.items.0.clientToken"),
    ],
)
def test_bad_items_are_refused(items: list[Any], path: str) -> None:
    assert_rejected(EvaluationRequest, scenario_request(items=items), path)


@pytest.mark.parametrize("bad", [None, float("inf"), {"a": [float("nan")]}])
def test_tool_documents_are_json_values(bad: Any) -> None:
    message = {"role": "assistant", "content": [{"toolUse": {"name": "t", "toolUseId": "t"}}]}
    message["content"][0]["toolUse"]["input"] = bad
    path = "scenarios.items.0.messages.0.content.0.toolUse.input"
    assert_rejected(EvaluationRequest, scenario_request(items=[{"messages": [message]}]), path)


def test_500_items_are_accepted() -> None:
    assert_valid(EvaluationRequest, scenario_request(items=[{"prompt": "p"}] * 500))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("harnessArn", "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/x-abcdefghij"),
        ("harnessArn", "arn:aws:bedrock-agentcore:us-east-1:123:harness/support_bot-abcdefghij"),
        ("qualifier", "1prod"),
        ("qualifier", "p" * 49),
        ("ingestion_delay_seconds", -1),
        ("ingestion_delay_seconds", 6 * 3600 + 1),
        ("ingestion_delay_seconds", "180"),
    ],
)
def test_bad_run_fields_are_refused(field: str, value: Any) -> None:
    assert_rejected(EvaluationRequest, scenario_request(**{field: value}), f"scenarios.{field}")


def _with_source(source: dict[str, Any], **evaluation: Any) -> dict[str, Any]:
    request = scenario_request()
    request["evaluation"]["dataSourceConfig"] = source
    request["evaluation"].update(evaluation)
    return request


@pytest.mark.parametrize(
    ("request_data", "words"),
    [
        (
            _with_source(
                {
                    "onlineEvaluationConfigSource": {
                        "onlineEvaluationConfigArn": "arn:aws:bedrock-agentcore:us-east-1:"
                        "123456789012:online-evaluation-config/cfg-abcdefghij"
                    }
                }
            ),
            "must be cloudWatchLogs",
        ),
        (_with_source({"cloudWatchLogs": {"serviceNames": ["s"]}}), "logGroupNames"),
        (
            _with_source(
                {
                    "cloudWatchLogs": {
                        "serviceNames": ["s"],
                        "logGroupNames": ["/g"],
                        "filterConfig": {"sessionIds": ["mine"]},
                    }
                }
            ),
            "sessionIds",
        ),
        (
            _with_source(
                {
                    "cloudWatchLogs": {
                        "serviceNames": ["s"],
                        "logGroupNames": ["/g"],
                        "filterConfig": {
                            "sessionTraceIds": [{"sessionId": "s", "traceIds": ["a" * 32]}]
                        },
                    }
                }
            ),
            "sessionTraceIds",
        ),
        (
            _with_source(
                {"cloudWatchLogs": {"serviceNames": ["s"], "logGroupNames": ["/g"]}},
                evaluationMetadata={"sessionMetadata": [{"sessionId": "s"}]},
            ),
            "evaluationMetadata",
        ),
    ],
    ids=["online source", "no log groups", "session ids", "session trace ids", "metadata"],
)
def test_with_scenarios_evalq_names_the_sessions(request_data: dict[str, Any], words: str) -> None:
    found = assert_rejected(EvaluationRequest, request_data, "(root)")
    assert words in found


def test_a_time_range_is_still_allowed() -> None:
    request = _with_source(
        {
            "cloudWatchLogs": {
                "serviceNames": ["s"],
                "logGroupNames": ["/g"],
                "filterConfig": {"timeRange": {"startTime": "2026-01-01T00:00:00Z"}},
            }
        }
    )
    assert_valid(EvaluationRequest, request)


def test_items_become_what_boto3_sends() -> None:
    item = {
        "messages": [
            {"role": "user", "content": [{"text": "Find order 7"}]},
            {
                "role": "assistant",
                "content": [
                    {"toolUse": {"name": "lookup", "toolUseId": "t1", "input": {"order": 7}}},
                    {"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"json": {"status": "late"}}]}}
                ],
            },
        ],
        "scenario_id": "late-order",
        "ground_truth": {"inline": {"assertions": [{"text": "apologises"}]}},
    }
    run = ScenarioRun.model_validate({"harnessArn": HARNESS, "items": [item]})
    messages = run.items[0].harness_messages()
    assert messages[2]["content"][0]["toolResult"]["content"] == [{"json": {"status": "late"}}]
    assert messages[1]["content"][1]["reasoningContent"]["redactedContent"] == b"redacted"
    report = ParamValidator().validate(
        {"harnessArn": HARNESS, "runtimeSessionId": "s" * 40, "messages": messages},
        invoke_shape(),
    )
    assert not report.has_errors(), report.generate_report()
    entry = run.items[0].session_metadata("s" * 40)
    assert entry == {
        "sessionId": "s" * 40,
        "testScenarioId": "late-order",
        "groundTruth": {"inline": {"assertions": [{"text": "apologises"}]}},
    }
    prompt_only = ScenarioRun.model_validate({"harnessArn": HARNESS, "items": [{"prompt": "hi"}]})
    assert prompt_only.items[0].harness_messages() == [
        {"role": "user", "content": [{"text": "hi"}]}
    ]
    assert prompt_only.items[0].session_metadata("x") == {"sessionId": "x"}


# --- the overrides: per run and per item --------------------------------------------------

KEY_ARN = (
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:token-vault/default/"
    "apikeycredentialprovider/openai-key"
)
GATEWAY_ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:gateway/my-gw-abcdefghij"
OAUTH_ARN = (
    "arn:aws:bedrock-agentcore:us-east-1:123456789012:token-vault/default/"
    "oauth2credentialprovider/github"
)
#: Every override member, each union branch at least once.
EVERY_OVERRIDE: dict[str, Any] = {
    "model": {
        "bedrockModelConfig": {
            "modelId": "anthropic.claude-sonnet",
            "maxTokens": 1,
            "temperature": 2,
            "topP": 0.5,
            "apiFormat": "converse_stream",
            "additionalParams": {"stop": None, "top_k": 5},
        }
    },
    "systemPrompt": [{"text": "Be brief."}, {"text": "Never promise a date."}],
    "tools": [
        {
            "type": "remote_mcp",
            "name": "search",
            "config": {
                "remoteMcp": {
                    "url": "https://mcp.example.com/mcp",
                    "headers": {"x-team": "evals"},
                    "outboundAuth": {"awsIam": {"service": "execute-api", "region": "us-east-1"}},
                }
            },
        },
        {
            "type": "agentcore_gateway",
            "config": {
                "agentCoreGateway": {
                    "gatewayArn": GATEWAY_ARN,
                    "outboundAuth": {
                        "oauth": {
                            "providerArn": OAUTH_ARN,
                            "scopes": ["repo"],
                            "customParameters": {"audience": "evals"},
                            "grantType": "CLIENT_CREDENTIALS",
                            "defaultReturnUrl": "https://example.com/back",
                        }
                    },
                }
            },
        },
        {
            "type": "agentcore_gateway",
            "config": {
                "agentCoreGateway": {"gatewayArn": GATEWAY_ARN, "outboundAuth": {"none": {}}}
            },
        },
        {
            "type": "inline_function",
            "name": "lookup",
            "config": {
                "inlineFunction": {
                    "description": "Looks an order up",
                    "inputSchema": {"type": "object", "properties": {"order": {"type": "integer"}}},
                }
            },
        },
        {"type": "agentcore_browser", "config": {"agentCoreBrowser": {}}},
        {"type": "agentcore_code_interpreter"},
    ],
    "skills": [
        {"path": "skills/refunds"},
        {"s3": {"uri": "s3://team-skills/refunds/"}},
        {
            "git": {
                "url": "https://github.com/org/skills",
                "path": "refunds",
                "auth": {"credentialArn": KEY_ARN, "username": "oauth2"},
            }
        },
        {"awsSkills": {"paths": ["core-skills/*"]}},
        {"awsSkills": {}},
    ],
    "allowedTools": ["*", "lookup", "@search", "gateway/list_orders"],
    "maxIterations": 5,
    "maxTokens": 2048,
    "timeoutSeconds": 120,
    "actorId": "customer-7",
    "runtimeUserId": "user-7",
}
OPENAI = {"openAiModelConfig": {"modelId": "gpt-5", "apiKeyArn": KEY_ARN, "topP": 1}}


def with_overrides(run: dict[str, Any] | None = None, *items: dict[str, Any]) -> dict[str, Any]:
    return scenario_request(items=[{"prompt": "hi", **i} for i in items or ({},)], **(run or {}))


def _sent(run: ScenarioRun, index: int) -> dict[str, Any]:
    """What boto3 is asked for item ``index``, checked by botocore's own validator."""
    params = {
        **run.harness_overrides_for(index),
        "harnessArn": HARNESS,
        "runtimeSessionId": "s" * 40,
        "messages": run.items[index].harness_messages(),
    }
    report = ParamValidator().validate(params, invoke_shape())
    assert not report.has_errors(), report.generate_report()
    return params


@pytest.mark.parametrize("where", ["run", "item"])
def test_every_override_is_accepted_and_sent_as_boto3_takes_it(where: str) -> None:
    data = (
        with_overrides(EVERY_OVERRIDE) if where == "run" else with_overrides(None, EVERY_OVERRIDE)
    )
    parsed = EvaluationRequest.model_validate(data)
    assert parsed.scenarios is not None
    sent = _sent(parsed.scenarios, 0)
    assert {k: v for k, v in sent.items() if k in OVERRIDE_FIELDS} == EVERY_OVERRIDE


def test_an_item_s_member_replaces_the_run_s() -> None:
    run = {
        "model": EVERY_OVERRIDE["model"],
        "systemPrompt": [{"text": "Be brief."}],
        "tools": EVERY_OVERRIDE["tools"][:2],
    }
    items: tuple[dict[str, Any], ...] = (
        {"model": OPENAI, "tools": [{"type": "agentcore_browser"}]},
        {},
    )
    scenarios = EvaluationRequest.model_validate(with_overrides(run, *items)).scenarios
    assert scenarios is not None
    first, second = _sent(scenarios, 0), _sent(scenarios, 1)
    assert first["model"] == OPENAI
    assert first["tools"] == [{"type": "agentcore_browser"}]  # replaced, not added to
    assert first["systemPrompt"] == second["systemPrompt"] == [{"text": "Be brief."}]
    assert second["model"] == EVERY_OVERRIDE["model"]
    assert second["tools"] == EVERY_OVERRIDE["tools"][:2]


def test_without_overrides_nothing_more_is_sent() -> None:
    scenarios = EvaluationRequest.model_validate(with_overrides()).scenarios
    assert scenarios is not None
    assert scenarios.harness_overrides_for(0) == {}
    assert set(_sent(scenarios, 0)) == {"harnessArn", "runtimeSessionId", "messages"}


def _git(url: str) -> dict[str, Any]:
    return {"skills": [{"git": {"url": url}}]}


def _bedrock(**config: Any) -> dict[str, Any]:
    return {"model": {"bedrockModelConfig": {"modelId": "m", **config}}}


def _tool(kind: str, **config: Any) -> dict[str, Any]:
    return {"tools": [{"type": kind, "config": config}]}


def _oauth(**oauth: Any) -> dict[str, Any]:
    auth = {"oauth": {"providerArn": OAUTH_ARN, "scopes": [], **oauth}}
    gateway = {"gatewayArn": GATEWAY_ARN, "outboundAuth": auth}
    return _tool("agentcore_gateway", agentCoreGateway=gateway)


GATEWAY = "tools.0.config.agentCoreGateway.outboundAuth.oauth"
BAD_OVERRIDES: list[tuple[dict[str, Any], str]] = [
    (_git("http://github.com/org/skills"), "skills.0.git.url"),
    (_git("https://token@github.com/org/skills"), "skills.0.git.url"),
    (_git("https://github.com/org/skills#main"), "skills.0.git.url"),
    (_git("https://"), "skills.0.git.url"),
    ({"skills": [{"awsSkills": {"paths": ["core-skills/[ab]"]}}]}, "skills.0.awsSkills.paths.0"),
    ({"skills": [{"awsSkills": {"paths": ["core?"]}}]}, "skills.0.awsSkills.paths.0"),
    ({"skills": [{"awsSkills": {"paths": [""]}}]}, "skills.0.awsSkills.paths.0"),
    ({"skills": [{"path": "a", "awsSkills": {}}]}, "skills.0"),
    ({"skills": [{}]}, "skills.0"),
    ({"skills": [{"s3": {"uri": "https://bucket/x"}}]}, "skills.0.s3.uri"),
    (
        {"skills": [{"git": {"url": "https://github.com/o/s", "auth": {"credentialArn": "x"}}}]},
        "skills.0.git.auth.credentialArn",
    ),
    ({"allowedTools": ["a/b/c"]}, "allowedTools.0"),
    ({"allowedTools": [""]}, "allowedTools.0"),
    ({"allowedTools": ["t" * 65]}, "allowedTools.0"),
    ({"model": {**OPENAI, **EVERY_OVERRIDE["model"]}}, "model"),
    ({"model": {}}, "model"),
    ({"model": {"openAiModelConfig": {"modelId": "gpt-5"}}}, "model.openAiModelConfig.apiKeyArn"),
    (_bedrock(temperature=2.5), "model.bedrockModelConfig.temperature"),
    (_bedrock(temperature=True), "model.bedrockModelConfig.temperature"),
    (_bedrock(topP="0.5"), "model.bedrockModelConfig.topP"),
    (_bedrock(maxTokens=0), "model.bedrockModelConfig.maxTokens"),
    (_bedrock(apiFormat="responses_v2"), "model.bedrockModelConfig.apiFormat"),
    (
        {"model": {"geminiModelConfig": {"modelId": "g", "apiKeyArn": KEY_ARN, "topK": 501}}},
        "model.geminiModelConfig.topK",
    ),
    ({"systemPrompt": [{"text": ""}]}, "systemPrompt.0.text"),
    ({"tools": [{"type": "lambda"}]}, "tools.0.type"),
    ({"tools": [{"type": "remote_mcp", "name": "no spaces"}]}, "tools.0.name"),
    (
        _tool("inline_function", inlineFunction={"description": "d", "inputSchema": None}),
        "tools.0.config.inlineFunction.inputSchema",
    ),
    (
        _tool("remote_mcp", remoteMcp={"url": "https://x", "headers": {"": "v"}}),
        "tools.0.config.remoteMcp.headers",
    ),
    (_oauth(scopes=["s"] * 101), f"{GATEWAY}.scopes"),
    (_oauth(customParameters={}), f"{GATEWAY}.customParameters"),
    (_oauth(grantType="PASSWORD"), f"{GATEWAY}.grantType"),
    ({"maxIterations": "5"}, "maxIterations"),
    ({"timeoutSeconds": 1.5}, "timeoutSeconds"),
    ({"runtimeUserId": "user\n7"}, "runtimeUserId"),
    ({"runtimeSessionId": "s" * 40}, "runtimeSessionId"),
    ({"traceId": "Root=1-abc"}, "traceId"),
]


@pytest.mark.parametrize("where", ["run", "item"])
@pytest.mark.parametrize(("bad", "path"), BAD_OVERRIDES, ids=[p for _, p in BAD_OVERRIDES])
def test_bad_overrides_are_refused_where_they_are(
    where: str, bad: dict[str, Any], path: str
) -> None:
    data = with_overrides(bad) if where == "run" else with_overrides(None, bad)
    prefix = "scenarios." if where == "run" else "scenarios.items.0."
    assert_rejected(EvaluationRequest, data, prefix + path, within=path.endswith("headers"))


def test_overrides_leave_the_hash_of_older_scenario_requests_as_it_was() -> None:
    # A scenario request's hash as evalq computed it before runs and items had overrides:
    # a request in flight across the upgrade stays the same job.
    request = sample_request()
    request["scenarios"] = {
        "harnessArn": HARNESS,
        "qualifier": "DEFAULT",
        "items": [
            {"prompt": "hi", "scenario_id": "s1"},
            {"messages": [{"role": "user", "content": [{"text": "Cancel my plan"}]}]},
        ],
    }
    before = "8ef8eb3d64c48f7f299cbd00ce5423c638c52f2a4f680328516380d5c268eb55"
    assert EvaluationRequest.model_validate(request).payload_hash() == before
    nulls = {name: None for name in OVERRIDE_FIELDS}
    request["scenarios"].update(nulls)
    request["scenarios"]["items"][0].update(nulls)
    assert EvaluationRequest.model_validate(request).payload_hash() == before
    request["scenarios"]["items"][0]["maxIterations"] = 3
    assert EvaluationRequest.model_validate(request).payload_hash() != before
