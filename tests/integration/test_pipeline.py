"""The core pipeline end to end: a foreign producer, real worker processes, a private
redis-server and the emulator over HTTP. Talks to evalq only as another service would."""

from __future__ import annotations

import collections
import random
import signal
import time

import pytest
import redis

from api_contracts.examples import sample_request

# The delivery-critical suites run on both brokers (docs/brokers.md).
pytestmark = pytest.mark.both_brokers


def _request(i: int, *, sessions: int = 2, producer: str = "team-a", **overrides):
    request = sample_request(request_id=f"req-{i:04d}", producer=producer, **overrides)
    request["evaluation"]["tags"] = {"emulator:sessions": str(sessions)}
    request["correlation"] = {"n": str(i)}
    return request


def _jobs_per_request(emulator) -> collections.Counter[str]:
    """Remote jobs per client token (one token per request)."""
    return collections.Counter(job["clientToken"] for job in emulator.jobs())


def test_fifty_requests_give_fifty_outcomes_and_never_more_than_five_active(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator)
    cluster.start_worker("w1", concurrency=2)
    cluster.start_worker("w2", concurrency=2)
    cluster.start_beat()

    for i in range(50):
        producer.submit(_request(i, sessions=random.Random(i).randint(1, 4)))
    outcomes = producer.collect(50, timeout=180)

    by_request = {o["request_id"]: o for o in outcomes}
    assert len(by_request) == 50
    assert {o["status"] for o in by_request.values()} == {"COMPLETED"}
    assert all(o["correlation"] == {"n": o["request_id"][-4:].lstrip("0") or "0"}
               for o in by_request.values())  # fmt: skip
    assert all(o["result"]["evaluationResults"]["totalNumberOfSessions"] >= 1
               for o in by_request.values())  # fmt: skip
    stats = emulator.stats()
    assert stats["jobs"]["total"] == 50
    assert stats["max_active"] <= 5
    assert max(_jobs_per_request(emulator).values()) == 1


def test_same_request_three_times_is_one_job_and_one_outcome(service, producer):
    emulator, cluster = service.emulator, service.cluster

    request = _request(1)
    for _ in range(3):
        producer.submit(request)
    conflicting = _request(1)
    conflicting["evaluation"]["description"] = "another payload, same request_id"
    producer.submit(conflicting)

    outcomes = producer.collect(1, timeout=60)
    outcomes += producer.drain(settle=3.0)
    assert [o["request_id"] for o in outcomes] == ["req-0001"]
    assert emulator.stats()["jobs"]["total"] == 1

    letters = _dead_letters(cluster.env)
    assert [d["reason"] for d in letters] == ["idempotency_conflict"]
    assert letters[0]["request"]["evaluation"]["description"] == "another payload, same request_id"


def test_request_aws_would_reject_never_reaches_the_service(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator)
    cluster.start_worker("w1", concurrency=1)
    cluster.start_beat()

    bad = _request(1)
    bad["evaluation"]["evaluators"] = [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]
    producer.submit(bad)
    producer.submit(_request(2))

    outcomes = producer.collect(1, timeout=60)
    assert [o["request_id"] for o in outcomes] == ["req-0002"]
    stats = emulator.stats()
    assert stats["calls"].get("StartBatchEvaluation", 0) == 1
    letters = _dead_letters(cluster.env)
    assert [d["reason"] for d in letters] == ["invalid_request"]
    assert "evaluation.evaluators" in letters[0]["error"]


def test_killed_worker_loses_nothing_and_starts_nothing_twice(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "20")
    cluster = cluster_factory(emulator)
    doomed = cluster.start_worker("doomed", concurrency=2)
    cluster.start_worker("survivor", concurrency=2)
    cluster.start_beat()

    for i in range(30):
        producer.submit(_request(i, sessions=3))
    first = producer.collect(5, timeout=120)
    doomed.kill(signal.SIGKILL)
    time.sleep(0.5)
    assert not doomed.alive()
    early = {o["request_id"] for o in first}
    rest = producer.collect(30 - len(early), timeout=240, seen=early)

    delivered = {o["request_id"] for o in first + rest}
    assert delivered == {f"req-{i:04d}" for i in range(30)}
    per_request = _jobs_per_request(emulator)
    assert len(per_request) == 30
    assert max(per_request.values()) == 1
    assert emulator.stats()["max_active"] <= 5


def _dead_letters(env: dict[str, str]) -> list[dict]:
    import json

    client = redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)
    ids = client.zrange("evalq:dead", 0, -1)
    return [json.loads(client.get(f"evalq:dead:{i}")) for i in ids]
