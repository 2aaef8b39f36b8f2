"""Hypothesis strategies for valid v1 messages (plain JSON dicts, as producers send them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from . import aws_model as aws

_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)

timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=_ZONES
).map(lambda moment: moment.isoformat())

#: Free text: any code points but surrogates.
free_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)

_NAME_CHARS = "abcXYZ019._-/#"
log_group_names = st.text(st.sampled_from(_NAME_CHARS), min_size=1, max_size=40)
_TAG_CHARS = st.sampled_from("abcXYZ0189 \t._:/=+@-")
tag_keys = st.text(_TAG_CHARS, min_size=1, max_size=128)
tag_values = st.text(_TAG_CHARS, max_size=256)
evaluator_ids = st.one_of(
    st.sampled_from(["Builtin.Helpfulness", "Builtin.Correctness", "Builtin.GoalSuccessRate"]),
    st.from_regex(r"ThirdParty\.[a-z]{1,8}\.[a-z_-]{1,8}", fullmatch=True),
    st.from_regex(r"[a-zA-Z][a-zA-Z0-9_-]{0,20}-[a-zA-Z0-9]{10}", fullmatch=True),
)
trace_ids = st.text(st.sampled_from("0123456789abcdef"), min_size=32, max_size=32)


def _optional(**members: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=members)


time_ranges = _optional(startTime=timestamps, endTime=timestamps)

cloud_watch_logs = st.fixed_dictionaries(
    {"serviceNames": st.lists(free_text, min_size=1, max_size=1)},
    optional={
        "logGroupNames": st.lists(log_group_names, max_size=3),
        "logGroupNamePrefixes": st.lists(log_group_names, min_size=1, max_size=5),
        "filterConfig": _optional(
            sessionIds=st.lists(free_text, max_size=3),
            timeRange=time_ranges,
            sessionTraceIds=st.lists(
                st.fixed_dictionaries(
                    {
                        "sessionId": free_text,
                        "traceIds": st.lists(trace_ids, min_size=1, max_size=3),
                    }
                ),
                min_size=1,
                max_size=3,
            ),
        ),
    },
)

online_source = st.fixed_dictionaries(
    {"onlineEvaluationConfigArn": st.just(aws.VALID_STRINGS["OnlineEvaluationConfigArn"])},
    optional={"timeRange": time_ranges},
)

data_sources = st.one_of(
    cloud_watch_logs.map(lambda source: {"cloudWatchLogs": source}),
    online_source.map(lambda source: {"onlineEvaluationConfigSource": source}),
)

contents = st.builds(lambda text: {"text": text}, st.text(min_size=1, max_size=30))
session_metadata = st.fixed_dictionaries(
    {"sessionId": free_text},
    optional={
        "testScenarioId": free_text,
        "metadata": st.dictionaries(free_text, free_text, max_size=3),
        "groundTruth": st.builds(
            lambda inline: {"inline": inline},
            _optional(
                assertions=st.lists(contents, min_size=1, max_size=3),
                expectedTrajectory=_optional(
                    toolNames=st.lists(st.text(min_size=1, max_size=10), max_size=3)
                ),
                turns=st.lists(
                    _optional(
                        input=st.builds(lambda p: {"prompt": p}, st.text(max_size=20)),
                        expectedResponse=contents,
                    ),
                    min_size=1,
                    max_size=2,
                ),
            ),
        ),
    },
)

output_configs = st.builds(
    lambda config: {"cloudWatchConfig": config},
    _optional(
        logGroupName=st.one_of(st.just(""), log_group_names),
        logStreamName=st.text(st.sampled_from("abc-_/ 1é"), max_size=20),
        metricsNamespace=st.from_regex(r"[a-zA-Z0-9._#/:-]{1,20}", fullmatch=True),
        resultDestination=st.sampled_from(["DEDICATED_LOG_GROUP", "SOURCE_LOG_GROUP"]),
    ),
)

dataset_configs = st.fixed_dictionaries(
    {
        "dataset": st.fixed_dictionaries(
            {"datasetId": st.from_regex(r"[a-zA-Z0-9_-]{1,20}", fullmatch=True)},
            optional={
                "datasetVersion": st.one_of(
                    st.just("DRAFT"), st.from_regex(r"[0-9]{1,19}", fullmatch=True)
                )
            },
        ),
        "agentInvocation": st.builds(
            lambda runtime: {"agentCoreRuntime": runtime},
            st.fixed_dictionaries(
                {"agentRuntimeEndpointArn": st.just(aws.VALID_STRINGS["AgentRuntimeEndpointArn"])},
                optional={"requestTemplate": st.text(max_size=40)},
            ),
        ),
    }
)

evaluations = st.fixed_dictionaries(
    {"dataSourceConfig": data_sources},
    optional={
        "batchEvaluationName": st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,47}", fullmatch=True),
        "evaluators": st.lists(st.builds(lambda i: {"evaluatorId": i}, evaluator_ids), max_size=10),
        "insights": st.lists(st.just({"insightId": "Builtin.Summary"}), max_size=2),
        "evaluationMetadata": st.builds(
            lambda items: {"sessionMetadata": items}, st.lists(session_metadata, max_size=3)
        ),
        "tags": st.dictionaries(tag_keys, tag_values, max_size=5),
        "kmsKeyArn": st.just(aws.VALID_STRINGS["KmsKeyArn"]),
        "description": st.text(max_size=200),
        "outputConfig": output_configs,
        "datasetExecutionConfig": dataset_configs,
    },
)

request_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", fullmatch=True)
producers = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,63}", fullmatch=True)
queue_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,30}", fullmatch=True)
correlation_values = st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=40)

requests = st.fixed_dictionaries(
    {"request_id": request_ids, "producer": producers, "evaluation": evaluations},
    optional={
        "schema_version": st.just(1),
        "backend": st.just("agentcore"),
        "deadline_seconds": st.one_of(st.none(), st.integers(1, 30 * 24 * 3600)),
        "retention_seconds": st.one_of(st.none(), st.integers(0, 365 * 24 * 3600)),
        "reply_to": st.lists(queue_names, max_size=10, unique=True),
        "correlation": st.dictionaries(
            st.from_regex(r"[A-Za-z0-9._:-]{1,64}", fullmatch=True), correlation_values, max_size=5
        ),
        "priority": st.integers(0, 9),
        "submitted_at": st.one_of(st.none(), timestamps),
    },
)

uuids = st.uuids().map(str)
_optional_bool = st.one_of(st.none(), st.booleans())

aymara_responses = st.fixed_dictionaries(
    {"prompt_uuid": uuids},
    optional={
        "content": st.one_of(
            st.none(),
            free_text,
            _optional(file_uuid=st.one_of(st.none(), uuids), remote_file_path=free_text),
        ),
        "content_type": st.sampled_from(["text", "image", "video"]),
        "ai_refused": st.booleans(),
        "exclude_from_scoring": st.booleans(),
        "continue_thread": st.booleans(),
        "thread_uuid": st.one_of(st.none(), uuids),
        "turn_number": st.integers(1, 20),
    },
)

aymara_evaluations = st.fixed_dictionaries(
    {"eval_uuid": uuids, "responses": st.lists(aymara_responses, max_size=5)},
    optional={
        "name": st.one_of(st.none(), free_text),
        "ai_description": st.one_of(st.none(), free_text),
        "workspace_uuid": uuids,
        "is_sandbox": _optional_bool,
        "eval_run_examples": st.lists(
            st.fixed_dictionaries(
                {
                    "prompt": free_text,
                    "response": free_text,
                    "type": st.sampled_from(["pass", "fail"]),
                },
                optional={"explanation": free_text, "example_uuid": uuids},
            ),
            max_size=3,
        ),
    },
)

_ids = st.text(st.sampled_from("abc-_019"), min_size=1, max_size=20)


@st.composite
def agno_evaluations(draw: st.DrawFn) -> dict[str, Any]:
    eval_type = draw(st.sampled_from(["accuracy", "agent_as_judge", "performance", "reliability"]))
    evaluation: dict[str, Any] = {
        "eval_type": eval_type,
        "input": draw(st.text(min_size=1, max_size=40)),
        draw(st.sampled_from(["agent_id", "team_id"])): draw(_ids),
    }
    required = {
        "accuracy": ("expected_output", st.text(min_size=1, max_size=20)),
        "agent_as_judge": ("criteria", st.text(min_size=1, max_size=20)),
        "reliability": ("expected_tool_calls", st.lists(_ids, max_size=3)),
    }.get(eval_type)
    if required is not None:
        evaluation[required[0]] = draw(required[1])
    evaluation.update(
        draw(
            _optional(
                model_id=_ids,
                model_provider=st.sampled_from(["openai", "anthropic"]),
                name=free_text,
                num_iterations=st.integers(1, 100),
                scoring_strategy=st.sampled_from(["numeric", "binary"]),
                threshold=st.integers(1, 10),
                warmup_runs=st.integers(0, 10),
                allow_additional_tool_calls=st.booleans(),
                additional_guidelines=free_text,
                db_id=_ids,
            )
        )
    )
    if "db_id" in evaluation and draw(st.booleans()):
        evaluation["table"] = draw(_ids)
    return evaluation


#: Any JSON value.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)

#: Valid requests of every backend.
any_backend_requests = st.one_of(
    requests,
    st.tuples(requests, aymara_evaluations).map(
        lambda pair: {**pair[0], "backend": "aymara", "evaluation": pair[1]}
    ),
    st.tuples(requests, agno_evaluations()).map(
        lambda pair: {**pair[0], "backend": "agno", "evaluation": pair[1]}
    ),
)

# --- scenarios (EvaluationRequest.scenarios) -----------------------------------------------

HARNESS_ARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:harness/support_bot-abcdefghij"
_tool_names = st.from_regex(r"[a-zA-Z0-9_-]{1,20}", fullmatch=True)
#: A document member: any JSON value but null (null is how a member is left out), with
#: finite numbers only (JSON has no infinities).
_documents = st.recursive(
    st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
_tool_use = st.fixed_dictionaries(
    {"name": _tool_names, "toolUseId": _tool_names, "input": _documents},
    optional={"type": st.sampled_from(["tool_use", "server_tool_use", "mcp_tool_use"])},
)
_tool_result = st.fixed_dictionaries(
    {
        "toolUseId": _tool_names,
        "content": st.lists(
            st.one_of(
                st.builds(lambda t: {"text": t}, st.text(min_size=1, max_size=20)),
                st.builds(lambda j: {"json": j}, _documents),
            ),
            max_size=2,
        ),
    },
    optional={"status": st.sampled_from(["success", "error"])},
)
content_blocks = st.one_of(
    st.builds(lambda t: {"text": t}, st.text(min_size=1, max_size=30)),
    st.builds(lambda u: {"toolUse": u}, _tool_use),
    st.builds(lambda r: {"toolResult": r}, _tool_result),
    st.builds(lambda t: {"reasoningContent": {"reasoningText": {"text": t}}}, st.text(max_size=20)),
)
harness_messages = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant"]),
        "content": st.lists(content_blocks, min_size=1, max_size=3),
    }
)
scenario_items = st.one_of(
    st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=40)}),
    st.fixed_dictionaries({"messages": st.lists(harness_messages, min_size=1, max_size=3)}),
).flatmap(
    lambda item: st.fixed_dictionaries(
        {k: st.just(v) for k, v in item.items()},
        optional={
            "scenario_id": free_text,
            "ground_truth": session_metadata.filter(lambda m: "groundTruth" in m).map(
                lambda m: m["groundTruth"]
            ),
        },
    )
)
scenario_runs = st.fixed_dictionaries(
    {"harnessArn": st.just(HARNESS_ARN), "items": st.lists(scenario_items, min_size=1, max_size=4)},
    optional={
        "qualifier": st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,47}", fullmatch=True),
        "ingestion_delay_seconds": st.integers(0, 6 * 3600),
    },
)
scenario_requests = st.builds(
    lambda request, run, groups: {
        **request,
        "evaluation": {
            **{
                k: v
                for k, v in request["evaluation"].items()
                if k not in ("evaluationMetadata", "datasetExecutionConfig")
            },
            "dataSourceConfig": {
                "cloudWatchLogs": {"serviceNames": ["support_bot.DEFAULT"], "logGroupNames": groups}
            },
        },
        "scenarios": run,
    },
    requests,
    scenario_runs,
    st.lists(log_group_names, min_size=1, max_size=3),
)
