"""The janitor end to end: real worker and beat processes sweeping on a short interval,
the emulator over HTTP on a fast clock, a private redis-server. Observes the account only
through the emulator's control plane and outcomes only as a producer does."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from datetime import datetime

import pytest
import redis

from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request
from evalq_emulators.processes import evalq_command
from worker.backends.agentcore import client_token, make_client
from worker.settings import Settings
from worker.targets.config import load_targets

# The delivery-critical suites run on both brokers (docs/brokers.md).
pytestmark = pytest.mark.both_brokers

#: Sweeps every second (production: every minute).
JANITOR = {"EVALQ_JANITOR_INTERVAL": "1"}
FOREVER = {"emulator:duration": "1000000000000"}  # runs for ages of emulated time


def _request(name: str, *, tags=None, **overrides):
    request = sample_request(request_id=name, producer="team-a", **overrides)
    request["evaluation"]["tags"] = tags or {"emulator:sessions": "1"}
    return request


def _start_foreign(emulator, name: str, tags) -> str:
    """A job another team started in the same account with plain boto3."""
    settings = Settings(
        agentcore_endpoint_url=emulator.url,
        aws_access_key_id="test",  # type: ignore[arg-type]
        aws_secret_access_key="test",  # type: ignore[arg-type]
    )
    evaluation = EvaluationRequest.model_validate(sample_request()).evaluation
    params = evaluation.to_boto3_kwargs() | {"batchEvaluationName": name, "tags": tags}
    (target,) = load_targets(settings).targets
    started = make_client(settings, target).start_batch_evaluation(
        clientToken=f"foreign-{uuid.uuid4().hex}", **params
    )
    return str(started["batchEvaluationId"])


def _remote_by_token(emulator) -> dict[str, dict]:
    return {job["clientToken"]: job for job in emulator.jobs()}


def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_jobs_past_their_deadline_are_stopped_expire_and_are_deleted(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "20")
    # Five stops fall due at once and Stop is limited to 3 calls a second: one sweep
    # interval of 2 s covers them (production: 60 s).
    sweep_seconds = 2.0
    cluster = cluster_factory(emulator, EVALQ_JANITOR_INTERVAL=str(sweep_seconds))
    cluster.start_worker("w1", concurrency=4)
    cluster.start_beat()

    # Five take the account's five active slots until their deadline...
    running = [f"running-{i}" for i in range(5)]
    for name in running:
        producer.submit(_request(name, tags=FOREVER, deadline_seconds=6, retention_seconds=1))
    _wait_until(lambda: len(emulator.jobs()) == 5, 30, "five jobs run")
    # ...while three wait in the backlog past theirs.
    waiting = [f"waiting-{i}" for i in range(3)]
    for name in waiting:
        producer.submit(_request(name, tags=FOREVER, deadline_seconds=1, retention_seconds=1))
    outcomes = {o["request_id"]: o for o in producer.collect(8, timeout=60)}

    assert set(outcomes) == set(running + waiting)
    assert {o["status"] for o in outcomes.values()} == {"EXPIRED"}
    assert all(outcomes[n]["result"]["status"] == "STOPPED" for n in running)
    assert not any(outcomes[n]["batch_evaluation_id"] for n in waiting)
    _wait_until(
        lambda: all(job["deleted_at"] for job in emulator.jobs()), 30, "every job is deleted"
    )
    remote = _remote_by_token(emulator)
    assert set(remote) == {client_token(n) for n in running}
    first_stop = min(job["stop_requested_at"] for job in remote.values())
    for name in waiting:  # expired at once, not when a slot freed up
        assert _epoch(outcomes[name]["published_at"]) < first_stop
    for name in running:
        deadline = _epoch(outcomes[name]["accepted_at"]) + 6
        assert remote[client_token(name)]["stop_requested_at"] <= deadline + sweep_seconds


def test_near_the_high_water_mark_old_published_jobs_are_deleted_early(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "40", "--max-jobs", "6")
    foreign = _start_foreign(emulator, "finished_elsewhere", {"emulator:sessions": "1"})
    cluster = cluster_factory(
        emulator, EVALQ_ACCOUNT_MAX_JOBS="6", EVALQ_ACCOUNT_HIGH_WATER="4", **JANITOR
    )
    cluster.start_worker("w1", concurrency=4)
    cluster.start_beat()

    # A week's retention each: without early deletes the sixth start would never fit.
    names = [f"kept-{i}" for i in range(10)]
    for name in names:
        producer.submit(_request(name, retention_seconds=7 * 24 * 3600))
    outcomes = producer.collect(10, timeout=90)

    assert {o["request_id"] for o in outcomes} == set(names)
    assert {o["status"] for o in outcomes} == {"COMPLETED"}

    def under_the_mark() -> bool:
        return sum(job["deleted_at"] is None for job in emulator.jobs()) < 4

    _wait_until(under_the_mark, 20, "the account is back under its high-water mark")
    remote = {job["batchEvaluationId"]: job for job in emulator.jobs()}
    assert remote[foreign]["deleted_at"] is None
    assert "account nearly full" in (cluster.logs / "w1.log").read_text()


def test_after_the_job_store_is_lost_orphans_are_cleaned_and_resent_requests_adopted(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "20")
    foreign_running = _start_foreign(emulator, "running_elsewhere", FOREVER)
    foreign_done = _start_foreign(emulator, "finished_elsewhere", {"emulator:sessions": "1"})
    cluster = cluster_factory(emulator, EVALQ_DEFAULT_RETENTION_SECONDS="1", **JANITOR)
    cluster.start_worker("w1", concurrency=4)
    beat = cluster.start_beat()

    lost = [_request(f"lost-{i}", tags=FOREVER) for i in range(2)]
    # About 6 real seconds of work each at this time scale.
    resent = [_request(f"resent-{i}", tags={"emulator:duration": "120"}) for i in range(2)]
    for request in lost + resent:
        producer.submit(request)
    _wait_until(lambda: len(emulator.jobs()) == 6, 30, "four evalq jobs run")
    first_ids = {job["clientToken"]: job["batchEvaluationId"] for job in emulator.jobs()}

    # The job store loses everything; the producer of two requests sends them again.
    beat.stop()  # no sweep may race the resend (the race is covered by unit tests)
    redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"]).flushdb()
    for request in resent:
        producer.submit(request)
    time.sleep(1.0)
    cluster.start_beat()

    outcomes = {o["request_id"]: o for o in producer.collect(2, timeout=40)}
    assert set(outcomes) == {"resent-0", "resent-1"}
    for name, outcome in outcomes.items():
        assert outcome["status"] == "COMPLETED"
        assert outcome["batch_evaluation_id"] == first_ids[client_token(name)]

    def orphans_gone() -> bool:
        remote = _remote_by_token(emulator)
        return all(remote[client_token(r["request_id"])]["deleted_at"] for r in lost)

    _wait_until(orphans_gone, 30, "the orphans are stopped and deleted")
    by_token = _remote_by_token(emulator)
    assert all(by_token[client_token(r["request_id"])]["stop_requested_at"] for r in lost)
    remote = {job["batchEvaluationId"]: job for job in emulator.jobs()}
    for foreign in (foreign_running, foreign_done):
        assert remote[foreign]["stop_requested_at"] is None
        assert remote[foreign]["deleted_at"] is None
    assert len(remote) == 6  # nothing was started twice

    dry_run = subprocess.run(
        evalq_command("janitor", "--dry-run", "--json"),
        env={**os.environ, **cluster.env}, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    plan = json.loads(dry_run.stdout)
    assert plan["dry_run"] is True
    assert plan["remote_jobs"] >= 2  # the foreign ones, at least
    touched = {i for key, value in plan.items() if isinstance(value, dict) for i in value["ids"]}
    assert not touched & {foreign_running, foreign_done}
