"""Redis Sentinel: broker and job store on a primary with one replica, watched by three
sentinels. Traffic runs, the primary is SIGKILLed, the sentinels promote the replica, and
evalq (worker, beat, CLI) follows it through the sentinels with nothing to restart.

Replication is asynchronous: a write the old primary acknowledged in its last instant may
never have reached the replica. Broker and job store share the server here, so the
replica holds a prefix of the same history: a job-store write lost with the primary is
lost with every later broker write, including the acknowledgement of the message that
made it, which is therefore delivered again. What can be lost is a producer's message
that was acknowledged and not yet replicated: the test counts those, and requires that
they were all sent in the last moments before the kill."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path

import pytest
import redis

from api_contracts.examples import sample_request
from evalq_emulators.pytest_plugin import FAST_SETTINGS, Cluster, Producer
from evalq_emulators.sentinel import RedisSentinels
from worker.runtime.connections import sentinel_broker_url
from worker.settings import Settings

REQUESTS = 40
#: Writes the old primary acknowledged this long (seconds) before it died may be lost.
REPLICATION_WINDOW = 1.0


def _request(i: int) -> dict:
    request = sample_request(request_id=f"failover-{i:03d}", producer=f"team-{i % 3}")
    request["evaluation"]["tags"] = {"emulator:sessions": "2"}
    return request


@pytest.mark.timeout(300)
def test_a_failover_under_traffic_is_followed_and_loses_only_the_replication_window(
    emulator_factory, tmp_path: Path
):
    group = RedisSentinels(tmp_path / "sentinel").start()
    emulator = emulator_factory("--time-scale", "100")
    env = {
        # With sentinels, the URLs give credentials and db numbers; their host is ignored.
        "EVALQ_BROKER_URL": "redis://ignored:6379/0",
        "EVALQ_REDIS_URL": "redis://ignored:6379/1",
        "EVALQ_REDIS_SENTINELS": group.addresses,
        "EVALQ_REDIS_SENTINEL_MASTER": group.master,
        "EVALQ_REDIS_WAIT_REPLICAS": "1",
        "EVALQ_REDIS_WAIT_TIMEOUT": "0.1",
        "EVALQ_AGENTCORE_ENDPOINT_URL": emulator.url,
        "EVALQ_AWS_ACCESS_KEY_ID": "test",
        "EVALQ_AWS_SECRET_ACCESS_KEY": "test",
        **FAST_SETTINGS,
    }
    settings = Settings(
        broker_url=env["EVALQ_BROKER_URL"],
        redis_sentinels=group.addresses,  # type: ignore[arg-type]
        redis_sentinel_master=group.master,
    )
    producer = Producer(
        sentinel_broker_url(settings), transport_options={"master_name": group.master}
    )
    producer.app.conf.task_publish_retry_policy = {
        "max_retries": 60, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5,
    }  # fmt: skip
    cluster = Cluster(env=env, logs=tmp_path)
    sent_at: dict[str, float] = {}
    try:
        cluster.start_worker("w1", concurrency=2)
        cluster.start_worker("w2", concurrency=2)
        cluster.start_beat()

        def submit_all() -> None:
            for i in range(REQUESTS):
                producer.submit(_request(i))
                sent_at[f"failover-{i:03d}"] = time.monotonic()
                time.sleep(0.1)

        submitter = threading.Thread(target=submit_all)
        submitter.start()
        time.sleep(2.0)
        old_port = group.primary.port
        group.primary.process.kill()  # SIGKILL
        killed_at, killed_wall = time.monotonic(), time.time()
        while group.primary_port() in (old_port, None):
            assert time.monotonic() - killed_at < 60, "the sentinels promoted no replica"
            time.sleep(0.1)
        promoted_after = time.monotonic() - killed_at
        assert group.primary_port() == group.replica.port
        store = group.replica.client(db=1, decode_responses=True)
        recovered_after = promoted_after + _seconds_until_an_outcome_after(store, killed_wall)
        submitter.join()
        states = _wait_until_every_request_ends(store, timeout=90)
        outcomes = producer.drain(settle=2.0)
    finally:
        cluster.stop()
        group.stop()

    delivered = collections.defaultdict(list)
    for outcome in outcomes:
        delivered[outcome["request_id"]].append(outcome["event_id"])
    dead = {request_id for request_id, state in states.items() if state == "DEAD"}
    lost = set(sent_at) - set(delivered) - dead
    remote = collections.Counter(job["clientToken"] for job in emulator.jobs())
    print(
        f"\nfailover: {REQUESTS} requests, primary SIGKILLed 2 s in; replica promoted "
        f"{promoted_after:.1f} s after the kill, outcomes again {recovered_after:.1f} s after "
        f"it; lost "
        f"{len(lost)} {sorted(lost)}; outcomes for {len(delivered)} requests ({len(outcomes)} "
        f"deliveries, {len(outcomes) - len(delivered)} duplicates); dead letters {len(dead)}; "
        f"remote jobs {sum(remote.values())} (max {max(remote.values())} per request)"
    )
    assert all(killed_at - REPLICATION_WINDOW <= sent_at[r] <= killed_at for r in lost), (
        "a request sent outside the replication window was lost"
    )
    assert len(delivered) + len(dead) + len(lost) == REQUESTS
    assert max(remote.values()) == 1, "a request got two remote jobs"
    assert all(len(set(ids)) == 1 for ids in delivered.values()), "duplicates with new event_id"
    # Sent after the promotion: every one arrives.
    assert {r for r, t in sent_at.items() if t > killed_at + promoted_after} <= set(delivered)


def _seconds_until_an_outcome_after(store: redis.Redis, killed_at: float) -> float:
    """Seconds from now until an outcome is published again: a job whose
    ``published_at`` (epoch) is after the kill."""
    started = time.monotonic()
    names = [f"evalq:job:failover-{i:03d}" for i in range(REQUESTS)]
    while time.monotonic() - started < 60:
        published = [store.hget(name, "published_at") for name in names]
        if any(float(at) > killed_at for at in published if at):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError("no outcome was published after the failover")


def _wait_until_every_request_ends(store: redis.Redis, timeout: float) -> dict[str, str | None]:
    """Each request's state once all have ended, or when ``timeout`` runs out (a request
    the failover lost never ends; one whose intake write was lost with its ack comes back
    from the unacked hash after the visibility timeout, so wait well past that)."""
    deadline = time.monotonic() + timeout
    names = [f"failover-{i:03d}" for i in range(REQUESTS)]
    while True:
        states = {r: store.hget(f"evalq:job:{r}", "state") for r in names}
        ended = all(s in ("PUBLISHED", "DELETED", "DEAD") for s in states.values())
        if ended or time.monotonic() > deadline:
            return states
        time.sleep(0.5)
