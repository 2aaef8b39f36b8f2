"""A locked-down Redis: TLS only (client certificates required, made here with openssl),
the default user off, and evalq's broker and job store each on an ACL user of its own
that is granted only the commands in deploy/redis/users.acl. evalq runs its whole
pipeline there (intake, dead letters, replay, outcomes, the janitor, the CLI) without one
command refused, and no password reaches a log or a dead letter. (The producer here is
the test's admin; the producer's own user, and every other role, is in test_roles.py.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from api_contracts.examples import sample_request
from evalq_emulators.processes import RedisServer, evalq_command
from evalq_emulators.pytest_plugin import FAST_SETTINGS, Cluster, Producer
from evalq_emulators.tls import make_certificates

ACL_FILE = Path(__file__).parents[2] / "deploy" / "redis" / "users.acl"
#: Passwords with characters a URL must escape.
WORKER_PASSWORD = "worker:p@ss/word-7f3a"
STORE_PASSWORD = "store:s3cr#t?-91bc"
ADMIN_PASSWORD = "admin-only-for-the-test"


def _request(request_id: str, **overrides) -> dict:
    request = sample_request(request_id=request_id, producer="locked-down", **overrides)
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    return request


def _evalq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        evalq_command(*args), env={**os.environ, **env}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def locked_down(tmp_path: Path):
    tls = make_certificates(tmp_path / "tls")
    rules = ACL_FILE.read_text()
    assert ">change-me-worker" in rules
    assert ">change-me-store" in rules
    rules = rules.replace(">change-me-worker", f">{WORKER_PASSWORD}")
    rules = rules.replace(">change-me-store", f">{STORE_PASSWORD}")
    acl = tmp_path / "users.acl"
    acl.write_text(rules + f"user admin on >{ADMIN_PASSWORD} ~* &* +@all\n")
    (tmp_path / "redis").mkdir()
    server = RedisServer(
        directory=tmp_path / "redis", log_path=tmp_path / "redis.log", tls=tls, aclfile=acl,
        admin=("admin", ADMIN_PASSWORD),
    ).start()  # fmt: skip
    try:
        yield server, tls
    finally:
        server.stop()


def test_tls_and_acl_users_for_broker_and_job_store(locked_down, emulator_factory, tmp_path):
    server, tls = locked_down
    emulator = emulator_factory("--time-scale", "40")
    host = f"127.0.0.1:{server.port}"
    broker_url = f"rediss://evalq-worker:{quote(WORKER_PASSWORD, safe='')}@{host}/0"
    env = {
        "EVALQ_BROKER_URL": broker_url,
        "EVALQ_REDIS_URL": f"rediss://evalq-store:{quote(STORE_PASSWORD, safe='')}@{host}/1",
        "EVALQ_TLS_CA_FILE": str(tls.ca_cert),
        "EVALQ_TLS_CERT_FILE": str(tls.client_cert),
        "EVALQ_TLS_KEY_FILE": str(tls.client_key),
        "EVALQ_AGENTCORE_ENDPOINT_URL": emulator.url,
        "EVALQ_AWS_ACCESS_KEY_ID": "test",
        "EVALQ_AWS_SECRET_ACCESS_KEY": "test",
        **FAST_SETTINGS,
        "EVALQ_JANITOR_INTERVAL": "1",
    }
    cluster = Cluster(env=env, logs=tmp_path)
    client_tls = {
        "ssl_cert_reqs": "required",
        "ssl_ca_certs": str(tls.ca_cert),
        "ssl_certfile": str(tls.client_cert),
        "ssl_keyfile": str(tls.client_key),
    }
    producer = Producer(f"rediss://admin:{ADMIN_PASSWORD}@{host}/0", ssl=client_tls)
    try:
        cluster.start_worker("w1", concurrency=2)
        cluster.start_beat()
        for i in range(3):
            producer.submit(_request(f"tls-{i}", reply_to=["tls.replies"]))
        producer.submit(_request("tls-0", reply_to=["tls.replies"]))  # a duplicate
        bad = _request("tls-bad")
        bad["evaluation"]["evaluators"] = [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]
        producer.submit(bad)
        outcomes = producer.collect(3, timeout=60)
        replies = producer.collect(3, timeout=30, queue="tls.replies")

        listed = _evalq(env, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
        replayed = _evalq(env, "dlq", "replay", letter["dead_letter_id"])
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        status = _evalq(env, "status", "tls-1", "--json")
        assert status.returncode == 0, status.stderr
        sweep = _evalq(env, "janitor", "--json")
        assert sweep.returncode == 0, sweep.stderr
        # The probes speak TLS with the private CA and the client certificate too.
        health = _evalq(env, "health", "--max-tick-age", "60")
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        cluster.stop()

    assert {o["request_id"] for o in outcomes} == {"tls-0", "tls-1", "tls-2"}
    assert {o["status"] for o in outcomes} == {"COMPLETED"}
    assert {o["request_id"] for o in replies} == {"tls-0", "tls-1", "tls-2"}
    assert letter["reason"] == "invalid_request"
    assert json.loads(status.stdout)["state"] in ("PUBLISHED", "DELETED")
    assert emulator.stats()["jobs"]["total"] == 3

    admin = server.client(decode_responses=True)
    # Not one command of evalq's was refused (Redis >= 7.2 also logs the CLIENT SETINFO
    # redis-py tries on connecting, and carries on without).
    refused = [e for e in admin.acl_log(count=100) if e["object"] != "client|setinfo"]
    assert refused == [], refused
    # The store's user reaches only evalq's keys.
    store_keys = server.client(db=1, decode_responses=True).keys("*")
    assert store_keys
    assert all(key.startswith("evalq:") for key in store_keys)
    # The default user is off; plain TCP and TLS without a client certificate are refused.
    tls_options = {"ssl": True, "ssl_ca_certs": str(tls.ca_cert), "socket_connect_timeout": 2}
    anonymous = redis.Redis(
        port=server.port, ssl_certfile=str(tls.client_cert), ssl_keyfile=str(tls.client_key),
        **tls_options,
    )  # fmt: skip
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=server.port, socket_connect_timeout=1, socket_timeout=1).ping()
    with pytest.raises(redis.ConnectionError) as refused_tls:
        redis.Redis(port=server.port, **tls_options).ping()
    assert not isinstance(refused_tls.value, redis.AuthenticationError)

    texts = [path.read_text(errors="replace") for path in tmp_path.glob("*.log")]
    texts += [listed.stdout, status.stdout, sweep.stdout]
    for secret in (WORKER_PASSWORD, STORE_PASSWORD, quote(WORKER_PASSWORD, safe="")):
        assert not any(secret in text for text in texts), "a password reached a log"
