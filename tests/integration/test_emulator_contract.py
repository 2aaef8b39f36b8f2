"""Contract tests: an unmodified boto3 client against the AgentCore emulator over HTTP.

Every assertion is about what boto3 observes (parsed fields, status codes, modeled
exceptions) or what the emulator's control plane reports. Lifecycles run at a high
time scale so they finish in well under a second; waits poll instead of sleeping.
"""

from __future__ import annotations

import functools
import json
import re
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from evalq_emulators.agentcore import EmulatorServer, FaultConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
ID_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9-_]{0,99}-[a-zA-Z0-9]{10}")
LIFECYCLE = ["PENDING", "IN_PROGRESS", "COMPLETED"]
# Keeps a job IN_PROGRESS for the whole test (10^6 emulated s = 1000 real s at 1000x).
LONG = {"emulator:duration": "1000000"}
SOURCE = {"cloudWatchLogs": {"serviceNames": ["agent.svc"], "logGroupNames": ["/aws/agent"]}}
# Fast defaults for tests that are not about rate limits.
SCALE = 1000.0
FAST = {"time_scale": SCALE, "mutate_tps": 10_000.0, "read_tps": 10_000.0, "seed": 1234}
ERROR_STATUS = {
    "ThrottlingException": 429,
    "ValidationException": 400,
    "ConflictException": 409,
    "ServiceQuotaExceededException": 402,
    "ResourceNotFoundException": 404,
    "AccessDeniedException": 403,
    "UnauthorizedException": 401,
    "InternalServerException": 500,
}


# --- helpers ------------------------------------------------------------------------


def make_client(url: str, **config: Any) -> Any:
    # One attempt only, so errors reach the test exactly as the emulator sent them.
    cfg = Config(retries={"total_max_attempts": 1}, **config)
    return boto3.client(
        "bedrock-agentcore",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=cfg,
    )


def control(url: str, path: str, body: Any = None, method: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    method = method or ("GET" if data is None else "POST")
    req = urllib.request.Request(f"{url}/_emulator/{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def start(client: Any, name: str, tags: dict[str, str] | None = None, **kw: Any) -> Any:
    kw.setdefault("dataSourceConfig", SOURCE)
    if tags is not None:
        kw["tags"] = tags
    return client.start_batch_evaluation(batchEvaluationName=name, **kw)


def get(client: Any, job_id: str) -> Any:
    return client.get_batch_evaluation(batchEvaluationId=job_id)


def wait_status(client: Any, job_id: str, *statuses: str) -> Any:
    return wait_for(lambda: (g := get(client, job_id))["status"] in statuses and g)


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def http_status(exc: botocore.exceptions.ClientError) -> int:
    return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    return make_emulator()


@pytest.fixture
def client(emulator: EmulatorServer) -> Any:
    return make_client(emulator.url)


# --- happy paths ----------------------------------------------------------------------


def test_health(emulator: EmulatorServer) -> None:
    assert control(emulator.url, "health") == {"ok": True}
    assert emulator.url == f"http://127.0.0.1:{emulator.port}"


def test_start_returns_202_with_parsed_fields(emulator: EmulatorServer, client: Any) -> None:
    evaluators = [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "Builtin.Correctness"}]
    resp = start(
        client,
        "nightly_eval",
        tags={"team": "qa"},
        evaluators=evaluators,
        description="nightly run",
    )
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert ID_RE.fullmatch(resp["batchEvaluationId"])
    assert resp["batchEvaluationId"].startswith("nightly_eval-")
    assert resp["batchEvaluationArn"] == (
        f"arn:aws:bedrock-agentcore:us-east-1:123456789012:batch-evaluation/"
        f"{resp['batchEvaluationId']}"
    )
    assert resp["batchEvaluationName"] == "nightly_eval"
    assert resp["status"] == "PENDING"
    assert resp["evaluators"] == evaluators
    assert resp["tags"] == {"team": "qa"}
    assert resp["description"] == "nightly run"
    assert isinstance(resp["createdAt"], datetime)
    assert resp["createdAt"].tzinfo is not None
    [job] = control(emulator.url, "jobs")
    assert job["batchEvaluationId"] == resp["batchEvaluationId"]
    assert abs(resp["createdAt"].timestamp() - job["created_at"]) < 0.002


def test_get_follows_lifecycle_to_completed(client: Any) -> None:
    evaluators = [{"evaluatorId": "Builtin.Helpfulness"}, {"evaluatorId": "Builtin.Faithfulness"}]
    job_id = start(client, "lifecycle", evaluators=evaluators)["batchEvaluationId"]
    seen: list[str] = []

    def poll() -> Any:
        g = get(client, job_id)
        assert g["ResponseMetadata"]["HTTPStatusCode"] == 200
        if not seen or seen[-1] != g["status"]:
            seen.append(g["status"])
        return g["status"] == "COMPLETED" and g

    final = wait_for(poll)
    assert seen == sorted(seen, key=LIFECYCLE.index)  # never goes backwards
    assert final["batchEvaluationId"] == job_id
    assert final["dataSourceConfig"] == SOURCE
    assert final["updatedAt"] >= final["createdAt"]
    results = final["evaluationResults"]
    assert results["totalNumberOfSessions"] == 10  # default_sessions
    assert results["numberOfSessionsCompleted"] == 10
    assert results["numberOfSessionsInProgress"] == 0
    assert results["numberOfSessionsFailed"] == 0
    assert results["numberOfSessionsIgnored"] == 0
    summaries = results["evaluatorSummaries"]
    assert [s["evaluatorId"] for s in summaries] == [e["evaluatorId"] for e in evaluators]
    for summary in summaries:
        assert 0.0 <= summary["statistics"]["averageScore"] <= 1.0
        assert summary["totalEvaluated"] == 10
    assert "errorDetails" not in final


def test_progress_counts_rise_consistently(make_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = make_emulator(time_scale=100.0)
    client = make_client(emulator.url)
    # 20 sessions over 150 emulated s = 1.5 real s of IN_PROGRESS.
    tags = {"emulator:sessions": "20", "emulator:duration": "150"}
    job_id = start(client, "progress", tags=tags)["batchEvaluationId"]
    completed: list[int] = []

    def poll() -> bool:
        g = get(client, job_id)
        r = g["evaluationResults"]
        assert r["totalNumberOfSessions"] == 20
        parts = (
            r["numberOfSessionsCompleted"]
            + r["numberOfSessionsFailed"]
            + r["numberOfSessionsIgnored"]
            + r["numberOfSessionsInProgress"]
        )
        if g["status"] == "IN_PROGRESS":
            assert parts == 20
            completed.append(r["numberOfSessionsCompleted"])
        return bool(g["status"] == "COMPLETED")

    wait_for(poll)
    assert completed == sorted(completed)
    assert len(set(completed)) >= 3  # it visibly rises, not jumps from 0 to done


def test_session_count_from_named_sessions_then_tag(client: Any) -> None:
    # Named sessions are the producer's own agents' traces by default; with
    # emulator:named_sessions=harness only those a harness produced count (see
    # test_emulator_harness.py): these never were. emulator:sessions does not override.
    source = {
        "cloudWatchLogs": {
            "serviceNames": ["svc"],
            "filterConfig": {"sessionIds": ["s1", "s2", "s3"]},
        }
    }
    by_ids = start(client, "by_ids", dataSourceConfig=source, tags={"emulator:sessions": "9"})
    harness_only = {"emulator:sessions": "9", "emulator:named_sessions": "harness"}
    by_harness = start(client, "by_harness", dataSourceConfig=source, tags=harness_only)
    by_tag = start(client, "by_tag", tags={"emulator:sessions": "7"})
    expected = {by_ids["batchEvaluationId"]: 3, by_harness["batchEvaluationId"]: 0,
                by_tag["batchEvaluationId"]: 7}  # fmt: skip
    for job_id, sessions in expected.items():
        final = wait_status(client, job_id, "COMPLETED")
        assert final["evaluationResults"]["totalNumberOfSessions"] == sessions


@pytest.mark.parametrize("outcome", ["COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"])
def test_terminal_outcome_tag(client: Any, outcome: str) -> None:
    evaluators = [{"evaluatorId": "Builtin.Helpfulness"}]
    tags = {"emulator:outcome": outcome}
    job_id = start(client, "outcome", tags=tags, evaluators=evaluators)["batchEvaluationId"]
    final = wait_status(client, job_id, "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED")
    assert final["status"] == outcome
    r = final["evaluationResults"]
    assert r["numberOfSessionsCompleted"] + r["numberOfSessionsFailed"] == 10
    assert r["numberOfSessionsInProgress"] == 0
    assert len(r["evaluatorSummaries"]) == 1
    if outcome == "COMPLETED":
        assert r["numberOfSessionsFailed"] == 0
    else:
        assert r["numberOfSessionsFailed"] > 0
    if outcome == "FAILED":
        assert len(final["errorDetails"]) == 1
        assert final["errorDetails"][0]
    else:
        assert "errorDetails" not in final


def test_lifecycle_edges_follow_time_scale(emulator: EmulatorServer, client: Any) -> None:
    # Edges are exact: pending 2 emulated s, then the tagged 100 emulated s, over SCALE.
    job_id = start(client, "timed", tags={"emulator:duration": "100"})["batchEvaluationId"]
    wait_status(client, job_id, "COMPLETED")
    [job] = control(emulator.url, "jobs")
    assert job["status"] == "COMPLETED"
    assert job["started_at"] - job["created_at"] == pytest.approx(2 / SCALE, abs=1e-6)
    assert job["ended_at"] - job["started_at"] == pytest.approx(100 / SCALE, abs=1e-6)
    assert job["stop_requested_at"] is None
    assert job["deleted_at"] is None
    assert job["tags"] == {"emulator:duration": "100"}


def test_list_newest_first_with_summary_fields(client: Any) -> None:
    ids = [
        start(client, f"listed_{i}", evaluators=[{"evaluatorId": "Builtin.Helpfulness"}])[
            "batchEvaluationId"
        ]
        for i in range(3)
    ]
    resp = client.list_batch_evaluations()
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert [s["batchEvaluationId"] for s in resp["batchEvaluations"]] == ids[::-1]
    assert "nextToken" not in resp
    summary = resp["batchEvaluations"][0]
    assert summary["batchEvaluationName"] == "listed_2"
    assert summary["batchEvaluationArn"].endswith(f"batch-evaluation/{ids[2]}")
    assert summary["status"] in {"PENDING", "IN_PROGRESS", "COMPLETED"}
    assert isinstance(summary["createdAt"], datetime)
    assert isinstance(summary["updatedAt"], datetime)
    assert summary["evaluators"] == [{"evaluatorId": "Builtin.Helpfulness"}]
    assert summary["evaluationResults"]["totalNumberOfSessions"] == 10


def test_list_pagination(make_emulator: Callable[..., EmulatorServer]) -> None:
    client = make_client(make_emulator(max_active=100).url)
    ids = [start(client, f"page_{i}")["batchEvaluationId"] for i in range(7)]
    pages: list[list[str]] = []
    kwargs: dict[str, Any] = {"maxResults": 3}
    while True:
        resp = client.list_batch_evaluations(**kwargs)
        pages.append([s["batchEvaluationId"] for s in resp["batchEvaluations"]])
        if "nextToken" not in resp:
            break
        kwargs["nextToken"] = resp["nextToken"]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == ids[::-1]
    # The boto3 paginator drives the same tokens.
    paginator = client.get_paginator("list_batch_evaluations")
    flat = [
        s["batchEvaluationId"]
        for page in paginator.paginate(PaginationConfig={"PageSize": 2})
        for s in page["batchEvaluations"]
    ]
    assert flat == ids[::-1]


def test_list_rejects_bad_paging_input(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException) as bad_token:
        client.list_batch_evaluations(nextToken="not-a-token")
    assert bad_token.value.response["fieldList"][0]["name"] == "nextToken"
    with pytest.raises(client.exceptions.ValidationException) as too_many:
        client.list_batch_evaluations(maxResults=101)
    assert too_many.value.response["fieldList"][0]["name"] == "maxResults"


# --- stop / delete --------------------------------------------------------------------


def test_stop_running_job_freezes_results(emulator: EmulatorServer, client: Any) -> None:
    # 2 emulated s (2 ms real) per session, 200 real s in all.
    tags = {"emulator:duration": "200000", "emulator:sessions": "100000"}
    job_id = start(client, "to_stop", tags=tags)["batchEvaluationId"]
    wait_for(lambda: get(client, job_id)["evaluationResults"]["numberOfSessionsCompleted"] > 0)
    resp = client.stop_batch_evaluation(batchEvaluationId=job_id)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert resp["batchEvaluationId"] == job_id
    assert resp["batchEvaluationArn"].endswith(job_id)
    assert resp["status"] == "STOPPING"
    stopping = get(client, job_id)
    frozen = stopping["evaluationResults"]["numberOfSessionsCompleted"]
    stopped = wait_status(client, job_id, "STOPPED")
    r = stopped["evaluationResults"]
    assert r["numberOfSessionsCompleted"] == frozen
    assert r["numberOfSessionsInProgress"] == 0
    assert r["numberOfSessionsCompleted"] + r["numberOfSessionsIgnored"] == 100000
    assert "evaluatorSummaries" in r
    [job] = control(emulator.url, "jobs")
    assert job["status"] == "STOPPED"
    assert job["ended_at"] - job["stop_requested_at"] == pytest.approx(3 / SCALE, abs=1e-6)


def test_stop_pending_job(make_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = make_emulator(pending_seconds=1_000_000.0)
    client = make_client(emulator.url)
    job_id = start(client, "pending")["batchEvaluationId"]
    assert client.stop_batch_evaluation(batchEvaluationId=job_id)["status"] == "STOPPING"
    final = wait_status(client, job_id, "STOPPED")
    assert final["evaluationResults"]["numberOfSessionsCompleted"] == 0
    [job] = control(emulator.url, "jobs")
    assert job["started_at"] is None


def test_stop_non_running_is_conflict(client: Any) -> None:
    done = start(client, "done")["batchEvaluationId"]
    wait_status(client, done, "COMPLETED")
    with pytest.raises(client.exceptions.ConflictException) as exc:
        client.stop_batch_evaluation(batchEvaluationId=done)
    assert http_status(exc.value) == 409
    running = start(client, "running", tags=LONG)["batchEvaluationId"]
    client.stop_batch_evaluation(batchEvaluationId=running)
    with pytest.raises(client.exceptions.ConflictException):
        client.stop_batch_evaluation(batchEvaluationId=running)  # already STOPPING


def test_delete_active_is_conflict(make_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = make_emulator(stop_seconds=1_000_000.0)
    client = make_client(emulator.url)
    job_id = start(client, "busy", tags=LONG)["batchEvaluationId"]
    with pytest.raises(client.exceptions.ConflictException) as exc:
        client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert http_status(exc.value) == 409
    client.stop_batch_evaluation(batchEvaluationId=job_id)
    with pytest.raises(client.exceptions.ConflictException):
        client.delete_batch_evaluation(batchEvaluationId=job_id)  # STOPPING
    assert get(client, job_id)["status"] == "STOPPING"


def test_delete_terminal_job_removes_it(emulator: EmulatorServer, client: Any) -> None:
    job_id = start(client, "to_delete")["batchEvaluationId"]
    keep_id = start(client, "to_keep")["batchEvaluationId"]
    wait_status(client, job_id, "COMPLETED")
    resp = client.delete_batch_evaluation(batchEvaluationId=job_id)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert resp["status"] == "COMPLETED"  # the deleted job's final status
    assert resp["batchEvaluationId"] == job_id
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        get(client, job_id)
    assert http_status(exc.value) == 404
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_batch_evaluation(batchEvaluationId=job_id)
    listed = [s["batchEvaluationId"] for s in client.list_batch_evaluations()["batchEvaluations"]]
    assert listed == [keep_id]
    jobs = {j["batchEvaluationId"]: j for j in control(emulator.url, "jobs")}
    assert jobs[job_id]["status"] == "DELETED"
    assert jobs[job_id]["deleted_at"] >= jobs[job_id]["ended_at"]
    stats = control(emulator.url, "stats")
    assert stats["jobs"]["total"] == 2
    assert stats["jobs"]["by_status"]["DELETED"] == 1
    # The name is free again once the job is gone.
    assert start(client, "to_delete")["batchEvaluationId"] != job_id


@pytest.mark.parametrize("operation", ["get", "stop", "delete"])
def test_unknown_id_is_not_found(client: Any, operation: str) -> None:
    call = {
        "get": client.get_batch_evaluation,
        "stop": client.stop_batch_evaluation,
        "delete": client.delete_batch_evaluation,
    }[operation]
    with pytest.raises(client.exceptions.ResourceNotFoundException) as exc:
        call(batchEvaluationId="missing-abcdefghij")
    assert http_status(exc.value) == 404
    assert "missing-abcdefghij" in exc.value.response["Error"]["Message"]


def test_malformed_id_is_validation_error(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException) as exc:
        get(client, "not an id")
    assert exc.value.response["fieldList"][0]["name"] == "batchEvaluationId"


# --- idempotency and conflicts ---------------------------------------------------------


def test_client_token_replay_returns_same_job(emulator: EmulatorServer, client: Any) -> None:
    token = "tok-" + "a" * 40
    first = start(client, "idem", clientToken=token, tags={"k": "v"})
    again = start(client, "idem", clientToken=token, tags={"k": "v"})
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 202
    strip = ("ResponseMetadata",)
    assert {k: v for k, v in again.items() if k not in strip} == {
        k: v for k, v in first.items() if k not in strip
    }
    stats = control(emulator.url, "stats")
    assert stats["jobs"]["total"] == 1
    assert stats["calls"]["StartBatchEvaluation"] == 2
    [job] = control(emulator.url, "jobs")
    assert job["clientToken"] == token


def test_concurrent_replays_create_one_job(emulator: EmulatorServer) -> None:
    token = "c" * 40
    ids: list[str] = []
    # boto3's default session is not thread-safe for creating clients; calls are.
    clients = [make_client(emulator.url) for _ in range(8)]

    def worker(c: Any) -> None:
        ids.append(start(c, "racy", clientToken=token)["batchEvaluationId"])

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8
    assert len(set(ids)) == 1
    assert control(emulator.url, "stats")["jobs"]["total"] == 1


def test_a_reused_client_token_with_other_parameters_is_ignored(
    emulator: EmulatorServer, client: Any
) -> None:
    # "If this token matches a previous request, the service ignores the request, but
    # does not return an error" (StartBatchEvaluation's clientToken, botocore's model).
    token = "b" * 40
    first = start(client, "first", clientToken=token)
    again = start(client, "second", clientToken=token, description="changed")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert again["batchEvaluationId"] == first["batchEvaluationId"]
    assert again["batchEvaluationName"] == "first"
    assert "description" not in again
    assert [j["batchEvaluationName"] for j in control(emulator.url, "jobs")] == ["first"]


def test_duplicate_name_is_conflict(emulator: EmulatorServer, client: Any) -> None:
    start(client, "same_name")
    with pytest.raises(client.exceptions.ConflictException) as exc:
        start(client, "same_name")  # botocore generates a fresh clientToken
    assert "same_name" in exc.value.response["Error"]["Message"]
    assert control(emulator.url, "stats")["jobs"]["total"] == 1


# --- quotas and throttling -------------------------------------------------------------


def test_active_quota(emulator: EmulatorServer, client: Any) -> None:
    ids = [start(client, f"active_{i}", tags=LONG)["batchEvaluationId"] for i in range(5)]
    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as exc:
        start(client, "one_too_many", tags=LONG)
    assert http_status(exc.value) == 402
    assert control(emulator.url, "stats")["max_active"] == 5
    client.stop_batch_evaluation(batchEvaluationId=ids[0])
    wait_status(client, ids[0], "STOPPED")
    start(client, "fits_again", tags=LONG)
    stats = control(emulator.url, "stats")
    assert stats["max_active"] == 5
    assert stats["jobs"]["by_status"]["IN_PROGRESS"] + stats["jobs"]["by_status"]["PENDING"] == 5
    assert stats["jobs"]["by_status"]["STOPPED"] == 1


def test_active_quota_holds_under_concurrency(emulator: EmulatorServer) -> None:
    clients = [make_client(emulator.url) for _ in range(12)]
    outcomes: list[str] = []

    def worker(i: int, c: Any) -> None:
        try:
            start(c, f"crowd_{i}", tags=LONG)
            outcomes.append("ok")
        except c.exceptions.ServiceQuotaExceededException:
            outcomes.append("quota")

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] * 5 + ["quota"] * 7
    stats = control(emulator.url, "stats")
    assert stats["max_active"] == 5
    assert stats["jobs"]["total"] == 5


def test_max_jobs_quota(make_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = make_emulator(max_jobs=3)
    client = make_client(emulator.url)
    ids = [start(client, f"kept_{i}")["batchEvaluationId"] for i in range(3)]
    for job_id in ids:
        wait_status(client, job_id, "COMPLETED")
    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as exc:
        start(client, "fourth")
    assert http_status(exc.value) == 402
    client.delete_batch_evaluation(batchEvaluationId=ids[0])
    assert start(client, "fourth")["status"] == "PENDING"


def outcome(call: Callable[[], Any]) -> str:
    try:
        call()
    except botocore.exceptions.ClientError as exc:
        return f"{error_code(exc)}:{http_status(exc)}"
    return "ok"


def test_start_rate_limit_throttles(make_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = make_emulator(mutate_tps=3.0)
    client = make_client(emulator.url)
    outcomes = [outcome(functools.partial(start, client, f"burst_{i}")) for i in range(8)]
    # The window starts empty, so the first three always pass.
    assert outcomes[:3] == ["ok"] * 3
    assert "ThrottlingException:429" in outcomes
    assert set(outcomes) == {"ok", "ThrottlingException:429"}
    stats = control(emulator.url, "stats")
    assert stats["throttled"] == outcomes.count("ThrottlingException:429")
    assert stats["calls"]["StartBatchEvaluation"] == 8
    assert stats["jobs"]["total"] == outcomes.count("ok")


def test_read_rate_limit_throttles(make_emulator: Callable[..., EmulatorServer]) -> None:
    emulator = make_emulator(read_tps=4.0)
    client = make_client(emulator.url)
    outcomes = [outcome(client.list_batch_evaluations) for _ in range(20)]
    assert outcomes[:4] == ["ok"] * 4
    assert "ThrottlingException:429" in outcomes
    stats = control(emulator.url, "stats")
    assert stats["throttled"] == outcomes.count("ThrottlingException:429")
    assert stats["calls"]["ListBatchEvaluations"] == 20


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"evaluators": [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]}, "evaluators"),
        ({"batchEvaluationName": "1-bad-name"}, "batchEvaluationName"),
        ({"clientToken": "!" * 40}, "clientToken"),
        ({"evaluators": [{"evaluatorId": "not valid"}]}, "evaluators.1.evaluatorId"),
        ({"description": "x" * 201}, "description"),
        ({"tags": {"emulator:outcome": "EXPLODED"}}, "tags.emulator:outcome"),
        ({"tags": {"emulator:sessions": "many"}}, "tags.emulator:sessions"),
    ],
)
def test_invalid_start_input(client: Any, kwargs: dict[str, Any], field: str) -> None:
    params: dict[str, Any] = {"batchEvaluationName": "valid_name", "dataSourceConfig": SOURCE}
    params.update(kwargs)
    with pytest.raises(client.exceptions.ValidationException) as exc:
        client.start_batch_evaluation(**params)
    assert http_status(exc.value) == 400
    assert exc.value.response["reason"] == "FieldValidationFailed"
    assert field in [f["name"] for f in exc.value.response["fieldList"]]
    assert field in exc.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"batchEvaluationName": "no_source"}, "dataSourceConfig"),
        (
            {"batchEvaluationName": "short", "dataSourceConfig": SOURCE, "clientToken": "abc"},
            "clientToken",
        ),
        (
            {
                "batchEvaluationName": "two",
                "dataSourceConfig": {
                    **SOURCE,
                    "onlineEvaluationConfigSource": {"onlineEvaluationConfigArn": "x"},
                },
            },
            "dataSourceConfig",
        ),
    ],
)
def test_server_validates_what_botocore_would(
    emulator: EmulatorServer, params: dict[str, Any], field: str
) -> None:
    # With client-side validation off, the server must catch what botocore normally does.
    client = make_client(emulator.url, parameter_validation=False)
    with pytest.raises(client.exceptions.ValidationException) as exc:
        client.start_batch_evaluation(**params)
    assert field in [f["name"] for f in exc.value.response["fieldList"]]
    assert control(emulator.url, "stats")["jobs"]["total"] == 0


# --- fault injection -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "status"), sorted(ERROR_STATUS.items()))
def test_forced_error_types(emulator: EmulatorServer, client: Any, name: str, status: int) -> None:
    control(emulator.url, "faults", {"errors": {name: 1.0}})
    with pytest.raises(getattr(client.exceptions, name)) as exc:
        client.list_batch_evaluations()
    assert error_code(exc.value) == name
    assert http_status(exc.value) == status
    assert exc.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == name
    assert exc.value.response["Error"]["Message"]
    assert control(emulator.url, "stats")["faults"]["errors"] == 1


def test_fault_server_error(emulator: EmulatorServer, client: Any) -> None:
    control(emulator.url, "faults", {"server_error": 1.0})
    with pytest.raises(client.exceptions.InternalServerException) as exc:
        start(client, "doomed")
    assert http_status(exc.value) == 500
    stats = control(emulator.url, "stats")
    assert stats["faults"]["server_error"] == 1
    assert stats["calls"]["StartBatchEvaluation"] == 1
    assert stats["jobs"]["total"] == 0


def test_fault_throttle(emulator: EmulatorServer, client: Any) -> None:
    control(emulator.url, "faults", {"throttle": 1.0})
    with pytest.raises(client.exceptions.ThrottlingException) as exc:
        client.list_batch_evaluations()
    assert http_status(exc.value) == 429
    stats = control(emulator.url, "stats")
    assert stats["faults"]["throttle"] == 1
    assert stats["throttled"] == 1


def test_fault_drop_closes_connection(emulator: EmulatorServer, client: Any) -> None:
    client.list_batch_evaluations()  # warm a keep-alive connection first
    control(emulator.url, "faults", {"drop": 1.0})
    with pytest.raises(
        (botocore.exceptions.ConnectionClosedError, botocore.exceptions.ConnectionError)
    ):
        client.list_batch_evaluations()
    assert control(emulator.url, "stats")["faults"]["drop"] == 1
    control(emulator.url, "faults", {})
    # The client's pool recovers: the next call gets a fresh connection.
    assert client.list_batch_evaluations()["batchEvaluations"] == []


def test_fault_lost_response_serves_the_call_but_never_answers(
    emulator: EmulatorServer, client: Any
) -> None:
    control(emulator.url, "faults", {"lost_response": 1.0, "operations": ["StartBatchEvaluation"]})
    with pytest.raises(
        (botocore.exceptions.ConnectionClosedError, botocore.exceptions.ConnectionError)
    ):
        start(client, "lost_answer", clientToken="t" * 40)
    assert control(emulator.url, "stats")["faults"]["lost_response"] == 1
    control(emulator.url, "faults", {})
    # The job exists; asking again with the same token returns it, not a second job.
    again = start(client, "lost_answer", clientToken="t" * 40)
    assert control(emulator.url, "stats")["jobs"]["total"] == 1
    assert client.get_batch_evaluation(batchEvaluationId=again["batchEvaluationId"])


def test_fault_latency_still_answers(emulator: EmulatorServer, client: Any) -> None:
    control(emulator.url, "faults", {"latency_rate": 1.0, "latency_ms": 30})
    assert client.list_batch_evaluations()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert control(emulator.url, "stats")["faults"]["latency"] == 1


def test_faults_limited_to_operations(emulator: EmulatorServer, client: Any) -> None:
    applied = control(
        emulator.url, "faults", {"server_error": 1.0, "operations": ["StartBatchEvaluation"]}
    )
    assert applied["operations"] == ["StartBatchEvaluation"]
    assert client.list_batch_evaluations()["batchEvaluations"] == []
    with pytest.raises(client.exceptions.InternalServerException):
        start(client, "hit")
    # Posting a new config replaces the old one entirely; {} clears all faults.
    control(emulator.url, "faults", {})
    assert start(client, "hit")["status"] == "PENDING"


def test_bad_fault_config_is_rejected(emulator: EmulatorServer) -> None:
    for body in ({"throttle": 2}, {"errors": {"NoSuchException": 1.0}}, {"bogus": 1}):
        with pytest.raises(urllib.error.HTTPError) as exc:
            control(emulator.url, "faults", body)
        assert exc.value.code == 400


def test_startup_faults_and_reset(make_emulator: Callable[..., EmulatorServer]) -> None:
    faults = FaultConfig(server_error=1.0, operations=["StartBatchEvaluation"])
    emulator = make_emulator(faults=faults)
    client = make_client(emulator.url)
    with pytest.raises(client.exceptions.InternalServerException):
        start(client, "blocked")
    control(emulator.url, "faults", {})
    start(client, "allowed")
    assert control(emulator.url, "stats")["jobs"]["total"] == 1
    assert control(emulator.url, "reset", method="POST") == {"ok": True}
    stats = control(emulator.url, "stats")
    assert stats["jobs"]["total"] == 0
    assert stats["max_active"] == 0
    assert set(stats["calls"].values()) == {0}
    assert set(stats["faults"].values()) == {0}
    assert control(emulator.url, "jobs") == []
    assert client.list_batch_evaluations()["batchEvaluations"] == []
    # Faults are back to the start-up config after a reset.
    with pytest.raises(client.exceptions.InternalServerException):
        start(client, "blocked_again")


def test_seeded_faults_are_reproducible(make_emulator: Callable[..., EmulatorServer]) -> None:
    def run() -> list[bool]:
        emulator = make_emulator(faults=FaultConfig(server_error=0.5), seed=99)
        client = make_client(emulator.url)
        out = []
        for _ in range(20):
            try:
                client.list_batch_evaluations()
                out.append(True)
            except client.exceptions.InternalServerException:
                out.append(False)
        return out

    first = run()
    assert first == run()
    assert True in first
    assert False in first


# --- command line ----------------------------------------------------------------------


def test_module_entry_point_serves_until_terminated() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalq_emulators", "--port", "0", "--time-scale", "100"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "emulator did not announce itself"
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"emulator listening on (http://127\.0\.0\.1:(\d+))", line)
        assert match, line
        assert int(match.group(2)) > 0
        client = make_client(match.group(1))
        assert client.list_batch_evaluations()["batchEvaluations"] == []
    finally:
        proc.terminate()
        returncode = proc.wait(timeout=10)
    assert returncode == 0
