"""The AgentCore emulator answers as the service documents say (the seeds in
``shared/seeds`` and botocore's model): the region a call is signed for, insight results,
the deleted job's final status, a reused clientToken, named sessions, ``timeRange`` and
``outputConfig``. An unmodified boto3 client over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from evalq_emulators.agentcore import EmulatorServer

from .test_emulator_contract import control, get, http_status, start, wait_status
from .test_emulator_harness import HARNESS, events, session

WEST = "us-west-2"
WEST_HARNESS = HARNESS.replace("us-east-1", WEST)


def client_for(url: str, region: str = "us-east-1", service: str = "bedrock-agentcore") -> Any:
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    return make_emulator()


@pytest.fixture
def client(emulator: EmulatorServer) -> Any:
    return client_for(emulator.url)


# --- the region a call is signed for ------------------------------------------------------


def test_a_call_is_served_in_the_region_it_is_signed_for(emulator: EmulatorServer) -> None:
    west, east = client_for(emulator.url, WEST), client_for(emulator.url)
    assert [e for e in events(west, session(1), harnessArn=WEST_HARNESS) if "messageStop" in e]
    with pytest.raises(west.exceptions.ResourceNotFoundException):
        events(west, session(2), harnessArn=HARNESS)  # an us-east-1 harness, asked in us-west-2
    job = start(west, "in_the_west")
    assert job["batchEvaluationArn"].startswith(f"arn:aws:bedrock-agentcore:{WEST}:")
    with pytest.raises(east.exceptions.ResourceNotFoundException) as exc:
        get(east, job["batchEvaluationId"])
    assert http_status(exc.value) == 404
    assert east.list_batch_evaluations()["batchEvaluations"] == []
    listed = west.list_batch_evaluations()["batchEvaluations"]
    assert [j["batchEvaluationId"] for j in listed] == [job["batchEvaluationId"]]
    start(east, "in_the_west")  # names are unique per region
    (view,) = [j for j in control(emulator.url, "jobs") if j["region"] == WEST]
    assert view["batchEvaluationName"] == "in_the_west"


def test_a_batch_job_finds_the_sessions_of_its_own_region(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = make_emulator(named_sessions="harness")
    west = client_for(emulator.url, WEST)
    events(west, session(3), harnessArn=WEST_HARNESS)
    source = {
        "cloudWatchLogs": {
            "serviceNames": ["support_bot.DEFAULT"],
            "logGroupNames": ["/aws/agent"],
            "filterConfig": {"sessionIds": [session(3)]},
        }
    }
    in_west = start(west, "west_sessions", dataSourceConfig=source)["batchEvaluationId"]
    east = client_for(emulator.url)
    in_east = start(east, "east_sessions", dataSourceConfig=source)["batchEvaluationId"]
    totals = [
        wait_status(c, j, "COMPLETED")["evaluationResults"]["totalNumberOfSessions"]
        for c, j in ((west, in_west), (east, in_east))
    ]
    assert totals == [1, 0]


def test_evaluators_live_in_their_region(emulator: EmulatorServer) -> None:
    west = client_for(emulator.url, WEST, "bedrock-agentcore-control")
    east = client_for(emulator.url, service="bedrock-agentcore-control")
    judge = {
        "llmAsAJudge": {
            "instructions": "Score {assistant_turn}.",
            "ratingScale": {"numerical": [{"definition": "Good", "value": 1.0, "label": "ok"}]},
            "modelConfig": {"bedrockEvaluatorModelConfig": {"modelId": "judge"}},
        }
    }
    made = west.create_evaluator(evaluatorName="west_judge", evaluatorConfig=judge, level="TRACE")
    assert made["evaluatorArn"].startswith(f"arn:aws:bedrock-agentcore:{WEST}:")
    with pytest.raises(east.exceptions.ResourceNotFoundException):
        east.get_evaluator(evaluatorId=made["evaluatorId"])
    assert west.get_evaluator(evaluatorId="Builtin.Helpfulness")["evaluatorId"]


def test_unsigned_calls_are_served_in_the_configured_region(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    emulator = make_emulator(region="eu-central-1")
    client = boto3.client(
        "bedrock-agentcore",
        region_name="eu-central-1",
        endpoint_url=emulator.url,
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    job = start(client, "unsigned")
    assert job["batchEvaluationArn"].startswith("arn:aws:bedrock-agentcore:eu-central-1:")


# --- named sessions -----------------------------------------------------------------------


def named(*session_ids: str, **filters: Any) -> dict[str, Any]:
    config = {"sessionIds": list(session_ids), **filters}
    logs = {"serviceNames": ["support_bot.DEFAULT"], "logGroupNames": ["/aws/agent"]}
    return {"cloudWatchLogs": {**logs, "filterConfig": config}}


def total(client: Any, job_id: str, *statuses: str) -> int:
    final = wait_status(client, job_id, *(statuses or ("COMPLETED",)))
    return int(final["evaluationResults"]["totalNumberOfSessions"])


def test_named_sessions_are_the_producer_s_traces_by_default(emulator: EmulatorServer) -> None:
    # A producer names its own agents' sessions, which no emulated harness ran.
    client = client_for(emulator.url)
    events(client, session(5))
    ids = [session(5), "checkout-agent-session-0001-abcdefghijklmnop", "another-session-of-ours"]
    job_id = start(client, "own_agents", dataSourceConfig=named(*ids))["batchEvaluationId"]
    assert total(client, job_id) == 3
    harness_only = start(client, "harness_only", dataSourceConfig=named(*ids),
                         tags={"emulator:named_sessions": "harness"})  # fmt: skip
    assert total(client, harness_only["batchEvaluationId"]) == 1
    views = {j["batchEvaluationName"]: j for j in control(emulator.url, "jobs")}
    assert views["own_agents"]["sessions_found"] == ids
    assert views["harness_only"]["sessions_found"] == [session(5)]
    with pytest.raises(client.exceptions.ValidationException) as exc:
        start(client, "bad_mode", dataSourceConfig=named(*ids),
              tags={"emulator:named_sessions": "all"})  # fmt: skip
    assert exc.value.response["fieldList"][0]["name"] == "tags.emulator:named_sessions"


# --- timeRange ----------------------------------------------------------------------------


def test_time_range_selects_named_sessions_by_their_activity(emulator: EmulatorServer) -> None:
    client = client_for(emulator.url)
    events(client, session(6))
    now = time.time()
    before = {"timeRange": {"endTime": now - 3600}}
    around = {"timeRange": {"startTime": now - 3600, "endTime": now + 3600}}
    harness = {"emulator:named_sessions": "harness"}
    early = start(
        client, "ended_before", dataSourceConfig=named(session(6), **before), tags=harness
    )
    during = start(client, "around_it", dataSourceConfig=named(session(6), **around), tags=harness)
    assert total(client, early["batchEvaluationId"]) == 0
    assert total(client, during["batchEvaluationId"]) == 1
    echoed = get(client, during["batchEvaluationId"])["dataSourceConfig"]["cloudWatchLogs"]
    assert echoed["filterConfig"]["timeRange"]["startTime"].timestamp() == pytest.approx(now - 3600)


def test_time_range_selects_the_log_groups_traffic(emulator: EmulatorServer) -> None:
    # The emulated traffic of the log groups (10 sessions here) spans the day before a job.
    client = client_for(emulator.url)
    now = time.time()
    windows = {
        "whole_day": ({"startTime": now - 86400 - 60}, 10),
        "last_half_day": ({"startTime": now - 43200}, 5),
        "after_now": ({"startTime": now + 3600}, 0),
        "a_week_ago": ({"endTime": now - 7 * 86400}, 0),
    }
    jobs = {}
    for name, (span, _) in windows.items():
        source = {"cloudWatchLogs": {"serviceNames": ["svc"], "logGroupNames": ["/aws/agent"],
                                     "filterConfig": {"timeRange": span}}}  # fmt: skip
        jobs[name] = start(client, name, dataSourceConfig=source)["batchEvaluationId"]
    assert {name: total(client, job_id) for name, job_id in jobs.items()} == {
        name: expected for name, (_, expected) in windows.items()
    }


# --- outputConfig ---------------------------------------------------------------------------


def test_without_output_config_the_service_reports_where_results_go(client: Any) -> None:
    job = start(client, "default_output")
    job_id = job["batchEvaluationId"]
    expected = {
        "cloudWatchConfig": {
            "logGroupName": f"/aws/bedrock-agentcore/evaluations/results/{job_id}",
            "resultDestination": "DEDICATED_LOG_GROUP",
            "metricsNamespace": "Bedrock-AgentCore/Evaluations",
        }
    }
    assert job["outputConfig"] == expected
    assert wait_status(client, job_id, "COMPLETED")["outputConfig"] == expected


@pytest.mark.parametrize(
    ("given", "reported"),
    [
        (
            {"logGroupName": "/evalq/results", "logStreamName": "nightly"},
            {"logGroupName": "/evalq/results", "logStreamName": "nightly",
             "resultDestination": "DEDICATED_LOG_GROUP",
             "metricsNamespace": "Bedrock-AgentCore/Evaluations"},
        ),
        (
            {"resultDestination": "SOURCE_LOG_GROUP", "metricsNamespace": "Evalq/Nightly"},
            {"resultDestination": "SOURCE_LOG_GROUP", "metricsNamespace": "Evalq/Nightly"},
        ),
    ],
)  # fmt: skip
def test_output_config_is_reported_with_the_defaults_it_left_out(
    client: Any, given: dict[str, Any], reported: dict[str, Any]
) -> None:
    job_id = start(client, "given_output", outputConfig={"cloudWatchConfig": given})[
        "batchEvaluationId"
    ]
    assert get(client, job_id)["outputConfig"] == {"cloudWatchConfig": reported}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"resultDestination": "SOURCE_LOG_GROUP", "logGroupName": "/evalq/results"},
         "outputConfig.cloudWatchConfig.logGroupName"),
        ({"logGroupName": "/aws/bedrock-agentcore/evaluations/mine"},
         "outputConfig.cloudWatchConfig.logGroupName"),
        ({"metricsNamespace": "AWS/Evalq"}, "outputConfig.cloudWatchConfig.metricsNamespace"),
    ],
)  # fmt: skip
def test_output_config_the_documents_refuse(
    emulator: EmulatorServer, client: Any, given: dict[str, Any], field: str
) -> None:
    with pytest.raises(client.exceptions.ValidationException) as exc:
        start(client, "refused_output", outputConfig={"cloudWatchConfig": given})
    assert [f["name"] for f in exc.value.response["fieldList"]] == [field]
    assert control(emulator.url, "jobs") == []


# --- DeleteBatchEvaluation ------------------------------------------------------------------


@pytest.mark.parametrize("final", ["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED"])
def test_delete_answers_the_job_s_final_status(client: Any, final: str) -> None:
    outcome = {"emulator:outcome": final} if final != "STOPPED" else {"emulator:duration": "1e6"}
    job_id = start(client, "to_delete", tags=outcome)["batchEvaluationId"]
    if final == "STOPPED":
        client.stop_batch_evaluation(batchEvaluationId=job_id)
    wait_status(client, job_id, final)
    answer = client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert (answer["batchEvaluationId"], answer["status"]) == (job_id, final)
    assert answer["batchEvaluationArn"].endswith(f"batch-evaluation/{job_id}")


# --- insight results ------------------------------------------------------------------------

INSIGHTS = [
    {"insightId": "Builtin.Insight.FailureAnalysis"},
    {"insightId": "Builtin.Insight.UserIntent"},
    {"insightId": "Builtin.Insight.ExecutionSummary"},
]
MEMBERS = ("failureAnalysisResult", "userIntentResult", "executionSummaryResult", "insightResults")


def signals(result: dict[str, Any]) -> list[str]:
    return [
        signal["category"]
        for failure in result["failures"]
        for sub in failure["subCategories"]
        for root in sub["rootCauses"]
        for affected in root["affectedSessions"]
        for span in affected["failureSpans"]
        for signal in span["signals"]
    ]


def test_a_finished_job_returns_the_results_of_its_insights(emulator: EmulatorServer) -> None:
    client = client_for(emulator.url)
    ran = [session(50 + i) for i in range(4)]
    for sid in ran:
        events(client, sid, f"Where is order {sid[-4:]}?")
    evaluators = [
        {"evaluatorId": "Builtin.Helpfulness"},
        {"evaluatorId": "Builtin.FailureAnalysis"},
    ]
    job = start(client, "with_insights", dataSourceConfig=named(*ran), insights=INSIGHTS,
                evaluators=evaluators, tags={"emulator:duration": "2000"})  # fmt: skip
    running = wait_status(client, job["batchEvaluationId"], "IN_PROGRESS")
    assert not set(MEMBERS) & set(running)
    final = wait_status(client, job["batchEvaluationId"], "COMPLETED")
    failures = final["failureAnalysisResult"]["failures"]
    assert failures[0]["affectedSessionCount"] == 2  # every third of the 4 sessions
    assert "other" in signals(final["failureAnalysisResult"])
    (intent,) = final["userIntentResult"]["userIntents"]
    assert [s["sessionId"] for s in intent["affectedSessions"]] == ran
    assert intent["affectedSessions"][0]["userMessages"] == [f"Where is order {ran[0][-4:]}?"]
    (summary,) = final["executionSummaryResult"]["executionSummaries"]
    assert summary["affectedSessionCount"] == 4
    (insight,) = final["insightResults"]  # the Builtin.FailureAnalysis evaluator's
    assert insight["type"] == "FAILURE"
    assert [s["sessionId"] for s in insight["rootCauses"][0]["sampleSessions"]] == ran[::3]
    (listed,) = client.list_batch_evaluations()["batchEvaluations"]
    assert not set(MEMBERS) & set(listed)  # the listing's summary has none of them


@pytest.mark.parametrize(
    ("tags", "insights", "status"),
    [
        ({"emulator:outcome": "FAILED"}, INSIGHTS, "FAILED"),
        ({}, None, "COMPLETED"),
    ],
    ids=["failed", "no insights"],
)
def test_no_insight_results_without_insights_or_when_the_job_failed(
    client: Any, tags: dict[str, str], insights: list[dict[str, str]] | None, status: str
) -> None:
    extra = {} if insights is None else {"insights": insights}
    job_id = start(client, "plain", tags=tags, **extra)["batchEvaluationId"]
    assert not set(MEMBERS) & set(wait_status(client, job_id, status))


def test_insights_over_the_log_groups_traffic(client: Any) -> None:
    job_id = start(client, "traffic", insights=INSIGHTS[:1], tags={"emulator:sessions": "6"})[
        "batchEvaluationId"
    ]
    final = wait_status(client, job_id, "COMPLETED")
    (failure,) = final["failureAnalysisResult"]["failures"]
    assert failure["affectedSessionCount"] == 2
    assert "userIntentResult" not in final
