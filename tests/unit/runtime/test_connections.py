"""The broker's Celery settings and the job store's client options, made from the URLs
and the TLS, Sentinel and queue settings (worker/runtime/connections.py, redis_clients.py,
replicas.py)."""

from __future__ import annotations

import ssl

import pytest
from redis.sentinel import SentinelConnectionPool

from worker.runtime.app import create_app
from worker.runtime.connections import (
    broker_settings,
    prefetch_multiplier,
    queue_arguments,
    sentinel_broker_url,
)
from worker.runtime.redis_clients import redis_client
from worker.runtime.replicas import wait_for_replicas
from worker.settings import Settings

RELIABLE = "worker.runtime.broker:ReliableRedisTransport"
RELIABLE_SENTINEL = "worker.runtime.broker:ReliableSentinelTransport"


@pytest.mark.parametrize(
    ("url", "reliable", "transport"),
    [
        ("redis://h:6379/0", True, RELIABLE),
        ("rediss://h:6380/0", True, RELIABLE),
        ("redis://h:6379/0", False, "redis"),
        ("amqp://guest@h//", True, None),
        ("amqps://guest@h//", True, None),
    ],
)
def test_the_reliable_transport_is_used_for_redis_brokers_unless_turned_off(
    url, reliable, transport
):
    settings = Settings(broker_url=url, broker_reliable_fetch=reliable)
    assert broker_settings(settings)["broker_transport"] == transport


def test_an_unknown_scheme_is_refused_with_the_ones_that_work():
    with pytest.raises(ValueError, match="redis, rediss, amqp or amqps"):
        broker_settings(Settings(broker_url="sentinel://h:26379"))


def test_rabbitmq_confirms_every_publish_and_prefetches_for_short_tasks():
    conf = broker_settings(Settings(broker_url="amqp://u:p@h:5672/v"))
    assert conf["broker_transport_options"] == {"confirm_publish": True}
    assert conf["worker_prefetch_multiplier"] == 4
    assert conf["broker_use_ssl"] is False
    redis_conf = broker_settings(Settings(broker_url="redis://h/0"))
    assert redis_conf["worker_prefetch_multiplier"] == 1
    assert "confirm_publish" not in redis_conf["broker_transport_options"]
    chosen = Settings(broker_url="amqp://h//", broker_prefetch_multiplier=10)
    assert broker_settings(chosen)["worker_prefetch_multiplier"] == 10


def test_quorum_queues_are_declared_by_every_queue_evalq_defines():
    settings = Settings(broker_url="amqp://h//", broker_queue_type="quorum")
    assert queue_arguments(settings) == {"x-queue-type": "quorum"}
    app = create_app(settings)
    assert {q.name: q.queue_arguments for q in app.conf.task_queues} == {
        "evals.requests": {"x-queue-type": "quorum"},
        "evals.control": {"x-queue-type": "quorum"},
        "evals.timers": {"x-queue-type": "quorum"},
        "evals.synchronous": {"x-queue-type": "quorum"},
    }
    assert all(q.durable for q in app.conf.task_queues)
    # Redis has no queue types: the setting is ignored there.
    assert queue_arguments(Settings(broker_url="redis://h/0", broker_queue_type="quorum")) is None
    assert queue_arguments(Settings(broker_url="amqp://h//")) is None


def test_tls_files_apply_to_a_rediss_broker_and_are_always_verified():
    settings = Settings(
        broker_url="rediss://evalq:secret@h:6380/0",
        tls_ca_file="/ca.pem",
        tls_cert_file="/client.pem",
        tls_key_file="/client.key",
    )
    assert broker_settings(settings)["broker_use_ssl"] == {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": "/ca.pem",
        "ssl_certfile": "/client.pem",
        "ssl_keyfile": "/client.key",
    }
    amqps = broker_settings(settings.model_copy(update={"broker_url": "amqps://h//"}))
    assert amqps["broker_use_ssl"]["cert_reqs"] == ssl.CERT_REQUIRED
    assert amqps["broker_use_ssl"]["ca_certs"] == "/ca.pem"


def test_sentinels_turn_a_redis_broker_url_into_kombus_sentinel_list():
    settings = Settings(
        broker_url="redis://evalq:p%40ss@ignored:6379/3",
        redis_sentinels="s1:26379, s2:26380,[::1]:26381",  # type: ignore[arg-type]
        redis_sentinel_master="evalq-primary",
    )
    assert sentinel_broker_url(settings) == (
        "sentinel://evalq:p%40ss@s1:26379/3;sentinel://evalq:p%40ss@s2:26380/3;"
        "sentinel://evalq:p%40ss@[::1]:26381/3"
    )
    conf = broker_settings(settings)
    assert conf["broker_transport"] == RELIABLE_SENTINEL
    assert conf["broker_transport_options"]["master_name"] == "evalq-primary"
    stock = broker_settings(settings.model_copy(update={"broker_reliable_fetch": False}))
    assert stock["broker_transport"] == "sentinel"


@pytest.mark.parametrize(
    ("sentinels", "master", "error"),
    [
        ("s1", "m", "not host:port"),
        ("s1:port", "m", "not host:port"),
        ("s1:26379", None, "EVALQ_REDIS_SENTINEL_MASTER"),
    ],
)
def test_a_bad_sentinel_setting_is_refused_with_what_is_wrong(sentinels, master, error):
    settings = Settings(redis_sentinels=sentinels, redis_sentinel_master=master)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=error):
        settings.sentinel_addresses()


def test_the_job_store_finds_its_primary_through_the_sentinels_with_the_urls_credentials():
    settings = Settings(
        redis_url="redis://evalq:secret@ignored:1/4",
        redis_sentinels="s1:26379,s2:26379",  # type: ignore[arg-type]
        redis_sentinel_master="evalq-primary",
    )
    pool = redis_client(settings).connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "evalq-primary"
    sentinels = [c.connection_pool.connection_kwargs for c in pool.sentinel_manager.sentinels]
    assert [(s["host"], s["port"]) for s in sentinels] == [("s1", 26379), ("s2", 26379)]
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (4, "evalq", "secret")
    assert "host" not in kwargs


def test_a_rediss_job_store_verifies_the_server_with_the_tls_files():
    settings = Settings(redis_url="rediss://h:6380/1", tls_ca_file="/ca.pem")
    kwargs = redis_client(settings).connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required"
    assert kwargs["ssl_ca_certs"] == "/ca.pem"


class RecordingClient:
    """Answers WAIT with ``replicas`` and records the calls."""

    def __init__(self, replicas: int) -> None:
        self.replicas = replicas
        self.calls: list[tuple[object, ...]] = []

    def execute_command(self, *args: object) -> int:
        self.calls.append(args)
        return self.replicas


def test_no_wait_for_replicas_unless_asked():
    client = RecordingClient(replicas=0)
    wait_for_replicas(Settings(), client)  # type: ignore[arg-type]
    assert client.calls == []


def test_a_task_waits_for_its_writes_to_reach_the_replicas_it_asks_for():
    settings = Settings(redis_wait_replicas=2, redis_wait_timeout=0.25)
    enough = RecordingClient(replicas=2)
    wait_for_replicas(settings, enough)  # type: ignore[arg-type]
    assert enough.calls == [("WAIT", 2, 250)]
    # Too few within the timeout: the task goes on (replication stays asynchronous).
    wait_for_replicas(settings, RecordingClient(replicas=1))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "queues", "chosen", "expected"),
    [
        ("redis://h/0", ["evals.requests", "evals.control", "evals.timers"], None, 4),
        ("redis://h/0", ["evals.requests", "evals.synchronous"], None, 1),
        ("redis://h/0", ["evals.synchronous"], 2, 2),
        ("amqp://h//", ["evals.synchronous"], None, 4),
        ("amqp://h//", ["evals.requests"], 10, 10),
    ],
)
def test_a_worker_takes_messages_ahead_unless_a_synchronous_run_could_hold_them_on_redis(
    url, queues, chosen, expected
):
    settings = Settings(broker_url=url, broker_prefetch_multiplier=chosen)
    assert prefetch_multiplier(settings, queues) == expected
