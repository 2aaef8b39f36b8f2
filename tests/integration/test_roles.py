"""Each role on credentials of its own (docs/roles.md), on both brokers: a private
redis-server loaded with deploy/redis/users.acl, and deploy/rabbitmq/definitions.json
imported into a private vhost of the machine's RabbitMQ. Each role is refused what it
must not do, and the whole pipeline (worker, beat, a producer, the CLI, the exporter)
runs under those users, with not one of evalq's commands refused."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from amqp.exceptions import AccessRefused
from kombu import Connection, Exchange, Queue

from api_contracts.examples import sample_request
from evalq_emulators.processes import RedisServer, evalq_command
from evalq_emulators.pytest_plugin import FAST_SETTINGS, Cluster, Emulator, Producer
from evalq_emulators.rabbitmq import RabbitRoles, RabbitServer
from worker.keys import Keys
from worker.runtime.broker import ReliableRedisTransport

ROOT = Path(__file__).parents[2]
ACL_FILE = ROOT / "deploy" / "redis" / "users.acl"
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
#: The users of the ACL file, and a second producer made from its template.
REDIS_USERS = ("evalq-worker", "evalq-store", "evalq-ops", "evalq-exporter", "evalq-producer")
OTHER_PRODUCER = "evalq-producer-b"
ADMIN_PASSWORD = "admin-only-for-the-test"
#: Where the store's keys live (EVALQ_REDIS_URL) and the broker's (EVALQ_BROKER_URL).
STORE_DB, BROKER_DB = 1, 0


# -- Redis -------------------------------------------------------------------------------------
@dataclass
class RedisRoles:
    """A redis-server loaded with the ACL file, each user with a password of this run."""

    server: RedisServer
    passwords: dict[str, str]

    def url(self, user: str, db: int) -> str:
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.server.port}/{db}"

    def client(self, user: str, db: int) -> redis.Redis:
        return redis.Redis(port=self.server.port, db=db, username=user,
                           password=self.passwords[user], decode_responses=True)  # fmt: skip

    def admin(self, db: int = BROKER_DB) -> redis.Redis:
        return self.server.client(db=db, decode_responses=True)


def _with_passwords(rules: str, passwords: dict[str, str]) -> str:
    """The ACL file with this run's passwords, and a second producer from its template
    (the template's line, renamed, with ``team-b`` for ``team-a``)."""
    (template,) = [line for line in rules.splitlines() if line.startswith("user evalq-producer ")]
    other = template.replace("user evalq-producer ", f"user {OTHER_PRODUCER} ")
    rules += other.replace("team-a.", "team-b.").replace("change-me-producer", "change-me-b") + "\n"
    placeholders = {user: f">change-me-{user.removeprefix('evalq-')}" for user in REDIS_USERS}
    placeholders[OTHER_PRODUCER] = ">change-me-b"
    for user, placeholder in placeholders.items():
        assert placeholder in rules, placeholder
        rules = rules.replace(placeholder, f">{passwords[user]}")
    return rules + f"user admin on >{ADMIN_PASSWORD} ~* &* +@all\n"


@pytest.fixture
def roles_redis(tmp_path: Path) -> Iterator[RedisRoles]:
    passwords = {user: secrets.token_hex(12) for user in (*REDIS_USERS, OTHER_PRODUCER)}
    acl = tmp_path / "users.acl"
    acl.write_text(_with_passwords(ACL_FILE.read_text(), passwords))
    (tmp_path / "redis").mkdir()
    server = RedisServer(directory=tmp_path / "redis", log_path=tmp_path / "redis.log",
                         aclfile=acl, admin=("admin", ADMIN_PASSWORD)).start()  # fmt: skip
    try:
        yield RedisRoles(server, passwords)
    finally:
        server.stop()


Case = tuple[str, int, tuple[Any, ...]]  # (user, db, command)


def _refused_commands(roles: RedisRoles, cases: list[Case]) -> list[str]:
    """The cases Redis did not refuse with NOPERM (a wrong password would be another error)."""
    allowed = []
    for user, db, command in cases:
        client = roles.client(user, db)
        try:
            client.execute_command(*command)
        except redis.exceptions.NoPermissionError:
            continue
        except redis.ResponseError as exc:
            allowed.append(f"{user} {command}: {exc}")
        else:
            allowed.append(f"{user} {command}")
        finally:
            client.close()
    return allowed


def test_each_redis_role_is_refused_what_it_must_not_do(roles_redis):
    keys = Keys()
    job, dead = keys.job("req-1"), keys.dead_letters
    store, broker = roles_redis.admin(STORE_DB), roles_redis.admin(BROKER_DB)
    store.hset(job, mapping={"state": "RUNNING", "producer": "team-b"})
    store.zadd(dead, {"letter-1": 1.0})
    for queue in ("evals.requests", "evals.control", "team-b.replies", "evals.results"):
        broker.lpush(queue, "message")
    broker.hset("unacked", "tag", "record")
    broker.hset("team-b.unacked", "tag", "record")
    broker.sadd("_kombu.binding.evals.requests", "binding")

    producer, exporter, ops = "evalq-producer", "evalq-exporter", "evalq-ops"
    worker = "evalq-worker"
    everyone_but_admin = (*REDIS_USERS, OTHER_PRODUCER)
    refused: list[Case] = [
        # The job store: the producer's broker user reaches no evalq:* key, in any db.
        *[(producer, db, c) for db in (STORE_DB, BROKER_DB) for c in (
            ("HGETALL", job), ("DEL", job), ("ZRANGE", dead, 0, -1), ("SET", "evalq:x", 1))],
        (producer, STORE_DB, ("KEYS", "*")),
        (producer, STORE_DB, ("SCAN", 0)),
        # Task events and remote control (pub/sub).
        (producer, BROKER_DB, ("SUBSCRIBE", "/0.celeryev/task.sent")),
        (producer, BROKER_DB, ("PSUBSCRIBE", "/0.celeryev/*")),
        (producer, BROKER_DB, ("PSUBSCRIBE", "*")),
        (producer, BROKER_DB, ("PUBLISH", "/0.celery.pidbox", "shutdown")),
        # evalq's own queues and kombu's keys.
        (producer, BROKER_DB, ("LPUSH", "evals.control", "x")),
        (producer, BROKER_DB, ("LPUSH", "evals.control\x06\x169", "x")),
        (producer, BROKER_DB, ("LPUSH", "evals.results", "x")),
        (producer, BROKER_DB, ("HSET", "unacked", "t", "x")),
        (producer, BROKER_DB, ("HGETALL", "unacked")),
        (producer, BROKER_DB, ("SADD", "_kombu.binding.evals.control", "x")),
        # The intake queue: push only; no purge, no reading, no unbinding.
        (producer, BROKER_DB, ("DEL", "evals.requests")),
        (producer, BROKER_DB, ("LRANGE", "evals.requests", 0, -1)),
        (producer, BROKER_DB, ("RPOP", "evals.requests")),
        (producer, BROKER_DB, ("BRPOP", "evals.requests", 1)),
        (producer, BROKER_DB, ("SREM", "_kombu.binding.evals.requests", "binding")),
        (producer, BROKER_DB, ("DEL", "_kombu.binding.evals.requests")),
        # Scripts and server commands.
        (producer, BROKER_DB, ("EVAL", "return 1", 0)),
        (producer, BROKER_DB, ("SCRIPT", "LOAD", "return 1")),
        (producer, BROKER_DB, ("FLUSHDB",)),
        (producer, BROKER_DB, ("FLUSHALL",)),
        (producer, BROKER_DB, ("CONFIG", "GET", "*")),
        (producer, BROKER_DB, ("CLIENT", "LIST")),
        (producer, BROKER_DB, ("ACL", "LIST")),
        # Another producer's reply queue and acknowledgement keys.
        (producer, BROKER_DB, ("BRPOP", "team-b.replies", 1)),
        (producer, BROKER_DB, ("LPUSH", "team-b.replies", "x")),
        (producer, BROKER_DB, ("HGETALL", "team-b.unacked")),
        (OTHER_PRODUCER, BROKER_DB, ("BRPOP", "team-a.replies", 1)),
        # The exporter writes nothing, anywhere.
        *[(exporter, db, c) for db in (STORE_DB, BROKER_DB) for c in (
            ("SET", "evalq:x", 1), ("DEL", job), ("HSET", job, "state", "DEAD"),
            ("ZADD", dead, 1, "x"), ("ZREM", dead, "letter-1"), ("LPUSH", "evals.requests", "x"),
            ("RPOP", "evals.requests"), ("HDEL", "unacked", "tag"), ("EVAL", "return 1", 0),
            ("PUBLISH", "/0.celeryev/x", "x"), ("FLUSHDB",), ("EXPIRE", job, 1))],
        # Ops: on the broker, only sends to evals.requests and evals.control.
        (ops, BROKER_DB, ("LPUSH", "evals.results", "x")),
        (ops, BROKER_DB, ("LPUSH", "evals.synchronous", "x")),
        (ops, BROKER_DB, ("LPUSH", "team-b.replies", "x")),
        (ops, BROKER_DB, ("LRANGE", "evals.requests", 0, -1)),
        (ops, BROKER_DB, ("RPOP", "evals.control")),
        (ops, BROKER_DB, ("DEL", "evals.requests")),
        (ops, BROKER_DB, ("BRPOP", "team-b.replies", 1)),
        (ops, BROKER_DB, ("HGETALL", "unacked")),
        (ops, BROKER_DB, ("SUBSCRIBE", "/0.celeryev/task.sent")),
        (ops, BROKER_DB, ("PUBLISH", "/0.celery.pidbox", "shutdown")),
        # The broker's worker user reaches neither the store nor a reply queue's contents.
        (worker, STORE_DB, ("HGETALL", job)),
        (worker, BROKER_DB, ("BRPOP", "team-b.replies", 1)),
        (worker, BROKER_DB, ("LRANGE", "team-b.replies", 0, -1)),
        # The store's user reaches no queue.
        ("evalq-store", BROKER_DB, ("LPUSH", "evals.requests", "x")),
        ("evalq-store", BROKER_DB, ("RPOP", "evals.requests")),
        *[(user, BROKER_DB, ("FLUSHALL",)) for user in everyone_but_admin],
    ]  # fmt: skip
    assert _refused_commands(roles_redis, refused) == []

    # What each role is there for still works (the refusals above are not a wrong password).
    assert roles_redis.client(producer, BROKER_DB).lpush("evals.requests", "ok") == 2
    assert roles_redis.client(producer, BROKER_DB).lpush("evals.requests\x06\x169", "ok") == 1
    assert roles_redis.client(ops, BROKER_DB).lpush("evals.control", "ok") == 2
    assert roles_redis.client(exporter, STORE_DB).hgetall(job)["state"] == "RUNNING"
    assert roles_redis.client(exporter, BROKER_DB).llen("evals.requests") == 2
    assert roles_redis.client(ops, STORE_DB).zrange(dead, 0, -1) == ["letter-1"]
    # Nothing refused was done.
    assert store.hgetall(job)["state"] == "RUNNING"
    assert store.zrange(dead, 0, -1) == ["letter-1"]
    assert broker.llen("evals.control") == 2
    assert broker.llen("team-b.replies") == 1
    assert broker.smembers("_kombu.binding.evals.requests") == {"binding"}


def test_a_producer_cannot_reroute_its_message_through_a_restore(roles_redis):
    """On Redis a message's delivery_info is whatever its sender wrote; one that names
    evals.control must neither count as delivered from there nor be restored there."""
    body = base64.b64encode(json.dumps([[], {}, {}]).encode()).decode()
    forged = {
        "body": body, "content-type": "application/json", "content-encoding": "utf-8",
        "headers": {"task": "evals.dlq.purge", "id": "forged-1"},
        "properties": {"body_encoding": "base64", "delivery_tag": "forged-1", "priority": 0,
                       "delivery_info": {"exchange": "", "routing_key": "evals.control"}},
    }  # fmt: skip
    roles_redis.client("evalq-producer", BROKER_DB).lpush("evals.requests", json.dumps(forged))
    got: list[Any] = []
    queue = Queue("evals.requests", Exchange("evals.requests"), "evals.requests")
    url = roles_redis.url("evalq-worker", BROKER_DB)
    # Closing the connection unacknowledged restores the message (as a warm shutdown
    # restores what a worker took ahead, or any live worker after a crash).
    with (
        Connection(url, transport=ReliableRedisTransport) as conn,
        conn.Consumer([queue], callbacks=[lambda body, message: got.append(message)]),
    ):
        conn.drain_events(timeout=10)
    (message,) = got
    assert message.delivery_info["routing_key"] == "evals.requests"
    broker = roles_redis.admin()
    assert broker.llen("evals.control") == 0
    assert broker.llen("evals.requests") == 1
    assert broker.hlen("unacked") == 0


# -- the pipeline on each broker ----------------------------------------------------------------
def _request(request_id: str, producer: str, **overrides: Any) -> dict[str, Any]:
    request = sample_request(request_id=request_id, producer=producer, **overrides)
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    return request


def _invalid(request_id: str, producer: str) -> dict[str, Any]:
    request = _request(request_id, producer)
    request["evaluation"]["evaluators"] = [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]
    return request


def _reply_queue(name: str) -> Queue:
    """A reply queue as a producer declares it: on the default exchange, where evalq
    publishes outcomes, so it needs no binding (which RabbitMQ counts as a write)."""
    return Queue(name, Exchange(""), name, durable=True)


def reply_options(prefix: str) -> dict[str, str]:
    """kombu transport options of a producer's consumer on Redis: its acknowledgement
    keys under its own prefix, never evalq's ``unacked`` hash."""
    return {"unacked_key": f"{prefix}.unacked", "unacked_index_key": f"{prefix}.unacked_index",
            "unacked_mutex_key": f"{prefix}.unacked_mutex"}  # fmt: skip


class RoleProducer(Producer):
    """A producer service on its own user. On RabbitMQ it sends through the exchange
    ``evals.requests`` and declares nothing of evalq's (its user may not configure them,
    nor write the default exchange, which routes to any queue); on Redis with the contract's
    call, which pushes to the list without looking up bindings."""

    def __init__(self, broker_url: str, prefix: str, **options: Any) -> None:
        super().__init__(broker_url, **options)
        self.prefix = prefix
        self.rabbitmq = broker_url.startswith("amqp")

    def submit(self, request: Any) -> None:
        kwargs = {"request": request}
        if self.rabbitmq:
            self.app.send_task("evals.submit", kwargs=kwargs, exchange="evals.requests",
                               routing_key="evals.requests", declare=[])  # fmt: skip
        else:
            self.app.send_task("evals.submit", kwargs=kwargs, queue="evals.requests")

    def replies(self, count: int, timeout: float, seen: set[str] | None = None) -> list[Any]:
        queue: Any = _reply_queue(f"{self.prefix}.replies")
        return self.collect(count, timeout=timeout, queue=queue, seen=seen)


def _evalq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(evalq_command(*args), env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


@dataclass
class Urls:
    """EVALQ_BROKER_URL and EVALQ_REDIS_URL of each role."""

    worker: tuple[str, str]
    ops: tuple[str, str]
    exporter: tuple[str, str]
    #: More settings of the worker and beat.
    worker_settings: dict[str, str] = field(default_factory=dict)

    def env(self, role: str, base: dict[str, str]) -> dict[str, str]:
        broker, store = getattr(self, role)
        extra = self.worker_settings if role == "worker" else {}
        return {**base, "EVALQ_BROKER_URL": broker, "EVALQ_REDIS_URL": store, **extra}


def _run_pipeline(
    urls: Urls,
    producers: dict[str, RoleProducer],
    emulator: Emulator,
    tmp_path: Path,
) -> dict[str, Any]:
    """Worker and beat as evalq-worker, each producer's requests and outcomes on its own
    user, the CLI as evalq-ops, a scrape as evalq-exporter. Returns what each saw."""
    base = {
        "EVALQ_AGENTCORE_ENDPOINT_URL": emulator.url,
        "EVALQ_AWS_ACCESS_KEY_ID": "test",
        "EVALQ_AWS_SECRET_ACCESS_KEY": "test",
        "EVALQ_HEARTBEAT_DIR": str(tmp_path / "heartbeats"),
        **FAST_SETTINGS,
    }
    cluster = Cluster(env=urls.env("worker", base), logs=tmp_path)
    exporter = Cluster(env=urls.env("exporter", base), logs=tmp_path)
    ops = urls.env("ops", base)
    seen: dict[str, Any] = {}
    try:
        cluster.start_worker("w1", concurrency=2)
        cluster.start_beat()
        metrics_url = exporter.start_exporter()
        for prefix, producer in producers.items():
            producer.submit(_request(f"{prefix}-1", prefix, reply_to=[f"{prefix}.replies"]))
        first = next(iter(producers))
        producers[first].submit(_invalid(f"{first}-bad", first))
        seen["replies"] = {p: producer.replies(1, timeout=90) for p, producer in producers.items()}

        listed = _evalq(ops, "dlq", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        seen["dead_letters"] = [json.loads(line) for line in listed.stdout.splitlines()]
        assert len(seen["dead_letters"]) == 1, seen["dead_letters"]
        (letter,) = seen["dead_letters"]
        replayed = _evalq(ops, "dlq", "replay", letter["dead_letter_id"])
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        # A request sent by ops reaches the worker, and its outcome the producer's queue.
        path = tmp_path / "request.json"
        path.write_text(json.dumps(_request(f"{first}-ops", first, reply_to=[f"{first}.replies"])))
        submitted = _evalq(ops, "submit", str(path))
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        seen["ops_reply"] = producers[first].replies(1, timeout=90, seen={f"{first}-1"})
        status = _evalq(ops, "status", f"{first}-1", "--json")
        assert status.returncode == 0, status.stderr
        seen["status"] = json.loads(status.stdout)
        sweep = _evalq(ops, "janitor", "--json")
        assert sweep.returncode == 0, sweep.stdout + sweep.stderr
        with urllib.request.urlopen(metrics_url, timeout=30) as response:
            seen["metrics"] = response.read().decode()
    finally:
        exporter.stop()
        cluster.stop()
    seen["logs"] = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    return seen


def _check_pipeline(seen: dict[str, Any], producers: dict[str, RoleProducer]) -> None:
    for prefix in producers:
        (reply,) = seen["replies"][prefix]
        assert (reply["request_id"], reply["status"]) == (f"{prefix}-1", "COMPLETED")
    first = next(iter(producers))
    assert f"{first}-ops" in {r["request_id"] for r in seen["ops_reply"]}
    assert [d["reason"] for d in seen["dead_letters"]] == ["invalid_request"]
    assert seen["status"]["state"] in ("PUBLISHED", "DELETED")
    metrics = seen["metrics"]
    assert 'evalq_broker_queue_messages{queue="evals.requests"}' in metrics
    assert re.search(r"evalq_requests_total\{[^}]*\} [1-9]", metrics)


def test_the_pipeline_runs_under_the_redis_roles(roles_redis, emulator_factory, tmp_path):
    emulator = emulator_factory("--time-scale", "40")
    urls = Urls(
        worker=(roles_redis.url("evalq-worker", BROKER_DB),
                roles_redis.url("evalq-store", STORE_DB)),
        ops=(roles_redis.url("evalq-ops", BROKER_DB), roles_redis.url("evalq-ops", STORE_DB)),
        exporter=(roles_redis.url("evalq-exporter", BROKER_DB),
                  roles_redis.url("evalq-exporter", STORE_DB)),
    )  # fmt: skip
    producers = {}
    for prefix, user in (("team-a", "evalq-producer"), ("team-b", OTHER_PRODUCER)):
        # kombu releases its restore lock with a Lua script, which a producer may not run:
        # the lock held for good makes kombu skip that restore (docs/roles.md).
        roles_redis.client(user, BROKER_DB).set(f"{prefix}.unacked_mutex", "restore-off")
        url = roles_redis.url(user, BROKER_DB)
        producers[prefix] = RoleProducer(url, prefix, transport_options=reply_options(prefix))

    seen = _run_pipeline(urls, producers, emulator, tmp_path)

    _check_pipeline(seen, producers)
    # Not one command of any role was refused (Redis >= 7.2 also logs the CLIENT SETINFO
    # redis-py tries on connecting, and carries on without).
    log = roles_redis.admin().acl_log(count=200)
    assert [e for e in log if e["object"] != "client|setinfo"] == []
    broker = roles_redis.admin()
    # The producers' acknowledgements stayed under their prefixes.
    assert broker.exists("team-a.unacked_index") + broker.exists("team-b.unacked_index") == 0
    for secret in roles_redis.passwords.values():
        assert secret not in seen["logs"], "a password reached a log"


# -- RabbitMQ ------------------------------------------------------------------------------------
@pytest.fixture
def rabbit_roles(rabbit_node: RabbitServer) -> Iterator[RabbitRoles]:
    roles = RabbitRoles(DEFINITIONS, rabbit_node)
    try:
        yield roles.create()
    finally:
        roles.delete()


def _refusal(url: str, act: Callable[[Connection], Any]) -> str:
    """What RabbitMQ said when ``act`` was refused ("" if it was not)."""
    try:
        with Connection(url, transport_options={"confirm_publish": True}) as conn:
            conn.ensure_connection(max_retries=1)
            act(conn)
    except AccessRefused as exc:
        return str(exc)
    return ""


def _publish(exchange: str, routing_key: str) -> Callable[[Connection], Any]:
    def act(conn: Connection) -> None:
        conn.Producer().publish({"x": 1}, exchange=exchange, routing_key=routing_key, retry=False)

    return act


def _declare(name: str, exchange: str = "") -> Callable[[Connection], Any]:
    return lambda conn: Queue(name, Exchange(exchange), name)(conn.default_channel).declare()


def _get(name: str) -> Callable[[Connection], Any]:
    return lambda conn: conn.default_channel.basic_get(queue=name)


def _contract_send(conn: Connection) -> None:
    producer = RoleProducer(conn.as_uri(include_password=True), "team-a")
    producer.app.conf.broker_transport_options = {"confirm_publish": True}
    producer.app.send_task("evals.submit", kwargs={"request": {}}, queue="evals.requests",
                           retry=False)  # fmt: skip


def test_each_rabbitmq_role_is_refused_what_it_must_not_do(rabbit_roles):
    producer, exporter, ops = (rabbit_roles.url(u) for u in ("team-a", "evalq-exporter",
                                                              "evalq-ops"))  # fmt: skip
    with Connection(rabbit_roles.url("evalq-worker")) as conn:
        # As evalq declares them: its own queue on its exchange, outcome queues without one.
        Queue("evals.control", Exchange("evals.control"), "evals.control")(conn).declare()
        for name in ("evals.results", "team-b.replies"):
            _reply_queue(name)(conn.default_channel).declare()
    cases = [
        # (user, what, the refused resource RabbitMQ names)
        (producer, _publish("", "evals.control"), "exchange 'amq.default'"),
        (producer, _publish("evals.control", "evals.control"), "exchange 'evals.control'"),
        # The contract's send_task(queue=...) publishes through the default exchange.
        (producer, _contract_send, "exchange 'evals.requests'"),
        (producer, _get("evals.requests"), "queue 'evals.requests'"),
        (producer, lambda c: c.default_channel.queue_purge("evals.requests"),
         "queue 'evals.requests'"),
        (producer, lambda c: c.default_channel.queue_delete("evals.requests"),
         "queue 'evals.requests'"),
        (producer, lambda c: c.default_channel.queue_bind("evals.control", "evals.requests",
                                                          "evals.requests"),
         "queue 'evals.control'"),
        (producer, lambda c: c.default_channel.exchange_declare("evals.requests", "fanout"),
         "exchange 'evals.requests'"),
        (producer, _declare("team-b.replies"), "queue 'team-b.replies'"),
        (producer, _get("team-b.replies"), "queue 'team-b.replies'"),
        (producer, _get("evals.results"), "queue 'evals.results'"),
        (exporter, _publish("evals.requests", "evals.requests"), "exchange 'evals.requests'"),
        (exporter, _publish("", "evals.control"), "exchange 'amq.default'"),
        (exporter, _get("evals.requests"), "queue 'evals.requests'"),
        (exporter, _declare("evalq-exporter.x"), "queue 'evalq-exporter.x'"),
        (exporter, lambda c: c.default_channel.queue_purge("evals.control"),
         "queue 'evals.control'"),
        (ops, _get("evals.results"), "queue 'evals.results'"),
        (ops, _get("team-b.replies"), "queue 'team-b.replies'"),
        (ops, _declare("team-a.replies"), "queue 'team-a.replies'"),
        (ops, lambda c: c.default_channel.queue_delete("evals.results"), "queue 'evals.results'"),
    ]  # fmt: skip
    problems = []
    for url, act, resource in cases:
        said = _refusal(url, act)
        if f"access to {resource}" not in said:
            problems.append(f"{url.split(':')[1]} {resource}: {said or 'not refused'}")
    assert problems == []

    # What each is there for works: the producer's send, its own queue, the exporter's count.
    assert _refusal(producer, _publish("evals.requests", "evals.requests")) == ""
    assert _refusal(producer, _declare("team-a.replies")) == ""
    with Connection(exporter) as conn:
        depth = conn.default_channel.queue_declare(queue="evals.requests", passive=True)
    assert depth.message_count == 1


def test_the_pipeline_runs_under_the_rabbitmq_roles(
    rabbit_roles, roles_redis, emulator_factory, tmp_path
):
    emulator = emulator_factory("--time-scale", "40")
    urls = Urls(
        worker=(rabbit_roles.url("evalq-worker"), roles_redis.url("evalq-store", STORE_DB)),
        ops=(rabbit_roles.url("evalq-ops"), roles_redis.url("evalq-ops", STORE_DB)),
        exporter=(rabbit_roles.url("evalq-exporter"),
                  roles_redis.url("evalq-exporter", STORE_DB)),
        # Ops' replays go to the control queue, which runs only evalq's users' messages.
        worker_settings={"EVALQ_INTERNAL_BROKER_USERS": rabbit_roles.users["evalq-ops"]},
    )  # fmt: skip
    producers = {"team-a": RoleProducer(rabbit_roles.url("team-a"), "team-a",
                                        transport_options={"confirm_publish": True})}  # fmt: skip

    seen = _run_pipeline(urls, producers, emulator, tmp_path)

    _check_pipeline(seen, producers)
    assert "ACCESS_REFUSED" not in seen["logs"]
    log = roles_redis.admin().acl_log(count=200)
    assert [e for e in log if e["object"] != "client|setinfo"] == []
    for secret in rabbit_roles.passwords.values():
        assert secret not in seen["logs"], "a password reached a log"
