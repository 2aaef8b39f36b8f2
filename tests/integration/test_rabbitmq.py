"""RabbitMQ as evalq's broker, past what every integration test already checks on it:
quorum queues by setting, durable queues, a prefetch sized for short tasks, outcome
queues a consumer binds before or after evalq publishes (or declared its own way), and
publisher confirms: an outcome RabbitMQ refuses is published again, not lost."""

from __future__ import annotations

import time

import pytest
import redis
from kombu import Connection, Queue
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from api_contracts.examples import sample_request
from evalq_emulators.pytest_plugin import Producer
from worker.runtime.exporter import build_registry
from worker.settings import Settings

QUORUM = {"x-queue-type": "quorum"}
#: A consumer's queue that holds one message and refuses (nacks) publishes beyond it.
FULL = {"x-max-length": 1, "x-overflow": "reject-publish"}

pytestmark = pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)


def _request(request_id: str, reply_to: list[str]) -> dict:
    request = sample_request(request_id=request_id, producer="rabbit-test")
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    request["reply_to"] = reply_to
    return request


def _declare(url: str, name: str, arguments: dict | None = None) -> None:
    with Connection(url) as conn:
        Queue(name, queue_arguments=arguments)(conn.default_channel).declare()


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.2)
    return value


def test_quorum_queues_outcomes_bound_before_or_after_and_a_refused_outcome_sent_again(
    emulator_factory, cluster_factory, broker
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator, EVALQ_BROKER_QUEUE_TYPE="quorum")
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()
    producer = Producer(broker.url, queue_arguments=QUORUM)
    classic = Producer(broker.url)  # a consumer that declares its queues as classic ones

    # Bound before evalq publishes: as quorum, as classic, and a full one.
    _declare(broker.url, "early.results", QUORUM)
    _declare(broker.url, "classic.results")
    _declare(broker.url, "full.results", FULL)
    with Connection(broker.url) as conn:
        conn.SimpleQueue("full.results", queue_args=FULL).put({"blocker": True})

    producer.submit(_request("to-many", ["early.results", "late.results", "classic.results"]))
    producer.submit(_request("to-full", ["full.results"]))
    first = producer.collect(2, timeout=60)
    assert {o["request_id"] for o in first} == {"to-many", "to-full"}

    # The full queue refused the outcome (a nack, seen thanks to publisher confirms): the
    # publish step is retried on the job's timer. Once the consumer made room, it is in.
    store = redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"], decode_responses=True)
    error = _wait_for(
        lambda: store.hget("evalq:job:to-full", "last_error"), 30, "the nack is recorded"
    )
    assert "refused the outcome for queue 'full.results'" in error
    with Connection(broker.url) as conn:
        blocker = conn.SimpleQueue("full.results", queue_args=FULL).get(timeout=5)
        assert blocker.payload == {"blocker": True}
        blocker.ack()
    full = Producer(broker.url, queue_arguments=FULL).collect(1, timeout=30, queue="full.results")
    assert [o["request_id"] for o in full] == ["to-full"]

    for name, reader in [
        ("early.results", producer),
        ("late.results", producer),  # declared by evalq, bound by its consumer only now
        ("classic.results", classic),
    ]:
        assert [o["request_id"] for o in reader.collect(1, timeout=30, queue=name)] == [
            "to-many"
        ], name
    # Sent again after the nack: at least once, one event_id.
    results = first + producer.drain(settle=1.0)
    assert len({o["event_id"] for o in results if o["request_id"] == "to-full"}) == 1

    queues = {row["name"]: row for row in broker.vhost.list("queues", "name", "durable", "type")}
    for name in ("evals.requests", "evals.control", "evals.results", "late.results"):
        assert (queues[name]["durable"], queues[name]["type"]) == ("true", "quorum"), name
    assert queues["classic.results"]["type"] == "classic"

    # Quorum queues take a per-consumer prefetch: 4 messages for each of 2 processes.
    consumers = broker.vhost.list("consumers", "queue_name", "prefetch_count")
    assert {c["prefetch_count"] for c in consumers if c["queue_name"] == "evals.requests"} == {"8"}
    assert emulator.stats()["jobs"]["total"] == 2


def test_the_exporter_reads_queue_depths_from_rabbitmq(broker):
    # Three requests wait (no worker runs); the outcome queue was never declared.
    producer = Producer(broker.url)
    for i in range(3):
        producer.submit(_request(f"depth-{i}", []))
    settings = Settings(broker_url=broker.url)
    registry = build_registry(settings)

    text = generate_latest(registry).decode()
    depths = {
        s.labels["queue"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "evalq_broker_queue_messages"
    }

    assert depths["evals.requests"] == 3
    assert depths["evals.results"] == 0
    assert depths["evals.control"] == 0
    # AMQP does not tell unacknowledged messages: no gauge rather than a wrong zero.
    assert "evalq_broker_unacked_messages" not in text
