"""Chaos: 300 requests through 3 worker processes that are SIGKILLed at random moments,
an emulator that throttles, fails, drops and loses answers, and the broker killed and
restarted once mid-run: a Redis (AOF, appendfsync always) that is also the job store, or
a RabbitMQ node. Nothing may be lost, nothing started twice, and duplicate outcome
deliveries must share one event_id."""

from __future__ import annotations

import collections
import json
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from api_contracts.examples import sample_request
from evalq_emulators.processes import RedisServer
from evalq_emulators.pytest_plugin import FAST_SETTINGS, Cluster, Producer
from evalq_emulators.rabbitmq import RabbitNode

# The delivery-critical suites run on both brokers (docs/brokers.md).
pytestmark = pytest.mark.both_brokers


REQUESTS = 300
FAULTS = {
    "throttle": 0.10,
    "server_error": 0.05,
    "drop": 0.02,
    "lost_response": 0.02,
    "latency_rate": 0.05,
    "latency_ms": 400,
}


def _request(i: int) -> dict:
    request = sample_request(request_id=f"chaos-{i:04d}", producer=f"team-{i % 4}")
    request["evaluation"]["tags"] = {"emulator:sessions": str(1 + i % 3)}
    return request


@pytest.mark.timeout(600)
def test_chaos_loses_nothing_and_starts_nothing_twice(emulator_factory, tmp_path: Path):
    """On Redis (broker and job store on one server, AOF): workers SIGKILLed, Redis
    SIGKILLed and restarted once."""
    server = RedisServer(
        appendonly=True, directory=tmp_path / "aof", log_path=tmp_path / "redis-aof.log"
    )
    (tmp_path / "aof").mkdir()
    server.start()

    def crash_and_restart() -> None:
        server.process.kill(signal.SIGKILL)
        time.sleep(0.5)
        server.restart()

    try:
        _chaos(emulator_factory, tmp_path, f"{server.url}/0", f"{server.url}/1", crash_and_restart)
    finally:
        server.stop()


@pytest.mark.timeout(600)
def test_chaos_on_rabbitmq_loses_nothing_and_starts_nothing_twice(
    emulator_factory, clean_redis, tmp_path: Path
):
    """On RabbitMQ (a private node: the shared one is never restarted), the job store on
    Redis: workers SIGKILLed, RabbitMQ SIGKILLed and restarted once."""
    node = RabbitNode(tmp_path / "rabbitmq").start()
    try:
        _chaos(emulator_factory, tmp_path, node.url, f"{clean_redis.url}/1", node.restart)
    finally:
        node.stop()


def _chaos(emulator_factory, tmp_path: Path, broker_url: str, store_url: str, restart) -> None:
    rng = random.Random(20261122)
    emulator = emulator_factory("--time-scale", "200", "--mutate-tps", "10", "--seed", "3")
    emulator.post("/_emulator/faults", FAULTS)
    env = {
        "EVALQ_BROKER_URL": broker_url,
        "EVALQ_REDIS_URL": store_url,
        "EVALQ_AGENTCORE_ENDPOINT_URL": emulator.url,
        "EVALQ_AWS_ACCESS_KEY_ID": "chaos",
        "EVALQ_AWS_SECRET_ACCESS_KEY": "chaos",
        **FAST_SETTINGS,
        "EVALQ_START_RATE": "10",
        "EVALQ_AWS_READ_TIMEOUT": "5",
    }
    cluster = Cluster(env=env, logs=tmp_path)
    try:
        workers = [cluster.start_worker(f"w{i}", concurrency=2) for i in range(3)]
        cluster.start_beat()
        kills, restarts, recovered = _run_chaos(cluster, workers, restart, env, rng)
        store = redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)
        finished = _wait_until_every_request_ends(store, timeout=300)
        outcomes = Producer(env["EVALQ_BROKER_URL"]).drain(settle=2.0)
    finally:
        cluster.stop()

    dead = {
        json.loads(store_value)["request_id"]: json.loads(store_value)["reason"]
        for store_value in finished["dead_letters"]
    }
    delivered = collections.defaultdict(list)
    for outcome in outcomes:
        delivered[outcome["request_id"]].append(outcome["event_id"])
    remote_per_token = collections.Counter(j["clientToken"] for j in emulator.jobs())
    stats = emulator.stats()
    wanted = {f"chaos-{i:04d}" for i in range(REQUESTS)}

    broker = broker_url.partition(":")[0]
    print(
        f"\nchaos on {broker}: {REQUESTS} requests, {kills} worker SIGKILLs, {restarts} broker "
        f"restart (first outcome {recovered:.1f} s after it); lost "
        f"{len(wanted - set(delivered) - set(dead))}; outcomes for {len(delivered)} requests "
        f"({len(outcomes)} deliveries, {len(outcomes) - len(delivered)} duplicates); dead "
        f"letters {len(dead)} {dict(collections.Counter(dead.values()))}; remote jobs "
        f"{sum(remote_per_token.values())} for {len(remote_per_token)} tokens (max "
        f"{max(remote_per_token.values())} per request); emulator faults {stats['faults']}, "
        f"throttled {stats['throttled']}, max active {stats['max_active']}"
    )
    assert wanted == set(delivered) | set(dead), "a request was lost"
    assert max(remote_per_token.values()) == 1, "a request got two remote jobs"
    assert all(len(set(ids)) == 1 for ids in delivered.values()), "duplicates with new event_id"
    assert set(delivered) & set(dead) == set()


def _run_chaos(cluster, workers, restart, env, rng) -> tuple[int, int, float]:
    """Submit gradually while killing workers at random; SIGKILL and restart the broker
    once mid-run. Returns kills, restarts and the seconds from the restart to the first
    outcome published after it."""
    producer = Celery("chaos-producer", broker=env["EVALQ_BROKER_URL"])
    producer.conf.update(
        task_serializer="json",
        # On RabbitMQ a send is done when the broker confirmed it (Redis ignores this).
        broker_transport_options={"confirm_publish": True},
        task_publish_retry_policy={
            "max_retries": 50,
            "interval_start": 0.2,
            "interval_step": 0.2,
            "interval_max": 1,
        },
    )

    def submit_all() -> None:
        for i in range(REQUESTS):
            producer.send_task(
                "evals.submit", kwargs={"request": _request(i)}, queue="evals.requests"
            )
            time.sleep(0.03)

    submitter = threading.Thread(target=submit_all)
    submitter.start()
    store = redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)
    kills = restarts = 0
    recovery: list[float] = []
    watcher: threading.Thread | None = None
    start = time.monotonic()
    while time.monotonic() - start < 30:
        time.sleep(rng.uniform(2.0, 5.0))
        victim = rng.randrange(len(workers))
        workers[victim].kill(signal.SIGKILL)
        kills += 1
        if restarts == 0 and time.monotonic() - start > 12:
            watcher = threading.Thread(
                target=_time_recovery, args=(store, _published(store), recovery), daemon=True
            )
            watcher.start()
            restart()  # SIGKILL, then start again
            restarts += 1
        workers[victim] = cluster.start_worker(f"w{victim}-{kills}", concurrency=2)
    submitter.join()
    if watcher is not None:
        watcher.join(timeout=120)
    return kills, restarts, recovery[0] if recovery else float("nan")


def _time_recovery(store: redis.Redis, published: int, into: list[float]) -> None:
    """Seconds from now until one more outcome is out than ``published``."""
    started = time.monotonic()
    while time.monotonic() - started < 120:
        try:
            if _published(store) > published:
                into.append(time.monotonic() - started)
                return
        except redis.ConnectionError:
            pass  # the job store is the broker that restarts
        time.sleep(0.2)


def _published(store: redis.Redis) -> int:
    """Requests whose outcome is out."""
    pipe = store.pipeline(transaction=False)
    for i in range(REQUESTS):
        pipe.hget(f"evalq:job:chaos-{i:04d}", "state")
    return sum(state in ("PUBLISHED", "DELETED") for state in pipe.execute())


def _wait_until_every_request_ends(store: redis.Redis, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    states: collections.Counter[str | None] = collections.Counter()
    while time.monotonic() < deadline:
        states = collections.Counter(
            store.hget(f"evalq:job:chaos-{i:04d}", "state") for i in range(REQUESTS)
        )
        ended = states["PUBLISHED"] + states["DELETED"] + states["DEAD"]
        if int(time.monotonic()) % 10 == 0:
            print("states", dict(states), flush=True)
        if ended == REQUESTS:
            ids = store.zrange("evalq:dead", 0, -1)
            return {"dead_letters": [store.get(f"evalq:dead:{i}") for i in ids]}
        time.sleep(1.0)
    stuck = {}
    for i in range(REQUESTS):
        key = f"chaos-{i:04d}"
        job = store.hgetall(f"evalq:job:{key}")
        if job.get("state") not in ("PUBLISHED", "DELETED", "DEAD"):
            fields = ("state", "attempts", "last_error", "batch_evaluation_id", "polls")
            stuck[key] = {f: job.get(f) for f in fields} | {"due": store.zscore("evalq:due", key)}
    raise AssertionError(
        f"not every request ended: {dict(states)}; now={time.time():.1f} stuck={stuck} "
        f"active={store.smembers('evalq:active')} "
        f"paused={store.get('evalq:admission-paused-until')}"
    )


def test_requests_sent_while_the_job_store_is_down_wait_for_it(
    emulator_factory, cluster_factory, producer, tmp_path: Path
):
    """The job store (its own Redis here) is down for longer than the clients retry:
    intake must hand the requests back to the queue, not ack them as failed tasks."""
    store_server = RedisServer(directory=tmp_path, log_path=tmp_path / "store.log").start()
    emulator = emulator_factory("--time-scale", "100")
    cluster = cluster_factory(
        emulator, EVALQ_REDIS_URL=f"{store_server.url}/0", EVALQ_REDIS_RETRY_SECONDS="0.5"
    )
    try:
        cluster.start_worker("w1")
        cluster.start_beat()
        store_server.stop()
        for i in range(5):
            producer.submit(sample_request(request_id=f"outage-{i}"))
        time.sleep(3.0)  # several failed attempts at each request
        store_server.restart()
        outcomes = producer.collect(5, timeout=60)
    finally:
        store_server.stop()
    assert {o["request_id"] for o in outcomes} == {f"outage-{i}" for i in range(5)}
    log = (cluster.logs / "w1.log").read_text(errors="replace")
    assert "job store unreachable; request back on the queue" in log
