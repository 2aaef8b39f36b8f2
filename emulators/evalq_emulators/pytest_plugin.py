"""pytest fixtures that run evalq's real parts (as ``celery.contrib.testing`` does).

* ``redis_server``: a private ``redis-server`` on a free port for the whole session;
  every test starts with it flushed.
* ``rabbit_node``: the session's RabbitMQ node: the machine's (``EVALQ_TEST_RABBITMQ_URL``,
  driven by ``rabbitmqctl``) when it answers, else a private node started for the
  session on free ports (``EVALQ_TEST_RABBITMQ=private`` forces one).
* ``broker``: the broker of one test: ``redis`` (db 0 of that server); a test or module
  marked ``both_brokers`` runs on ``rabbitmq`` too (a private vhost on ``rabbit_node``,
  created for the test and deleted after it). Pin a test to one with
  ``@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)``.
* ``emulator_factory``: ``evalq emulator`` as a subprocess, with the options a test wants.
* ``evalq_cluster``: start ``evalq worker`` / ``evalq beat`` processes against them.
* ``producer``: a foreign Celery app that sends ``evals.submit`` (and
  ``evals.evaluator.update``) by name and reads outcomes from ``evals.results`` (and
  ``evals.evaluator-updates``), as another team's service would.

Load with ``pytest_plugins = ["evalq_emulators.pytest_plugin"]``.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from kombu.connection import Connection

from evalq_emulators.processes import (
    ManagedProcess,
    RedisServer,
    evalq_command,
    free_port,
    wait_for_line,
)
from evalq_emulators.rabbitmq import RabbitServer, RabbitVhost, session_node

#: The brokers the ``broker`` fixture runs each test on.
BROKERS = ("redis", "rabbitmq")

#: The judge of :meth:`Emulator.create_evaluator` (CreateEvaluator's ``evaluatorConfig``).
SAMPLE_JUDGE: dict[str, Any] = {
    "llmAsAJudge": {
        "instructions": "Rate how well the answer uses {context}.",
        "ratingScale": {
            "numerical": [
                {"definition": "Bad", "value": 0.0, "label": "bad"},
                {"definition": "Good", "value": 1.0, "label": "good"},
            ]
        },
        "modelConfig": {"bedrockEvaluatorModelConfig": {"modelId": "judge-model-v1"}},
    }
}

#: Short clocks so integration tests finish in seconds.
FAST_SETTINGS = {
    "EVALQ_TICK_INTERVAL": "0.2",
    "EVALQ_LEASE_SECONDS": "5",
    "EVALQ_POLL_INITIAL": "0.3",
    "EVALQ_POLL_MAX": "2.0",
    "EVALQ_POLL_MIN": "0.1",
    "EVALQ_RETRY_INITIAL": "0.2",
    "EVALQ_RETRY_MAX": "2.0",
    "EVALQ_QUOTA_BACKOFF": "1.0",
    "EVALQ_VISIBILITY_TIMEOUT": "10",
    "EVALQ_RESTORE_INTERVAL": "2",
    "EVALQ_LOG_LEVEL": "INFO",
}


def _wait(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the emulator did not get there in time")
        time.sleep(0.02)


@dataclass
class Emulator:
    url: str
    process: ManagedProcess

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def post(self, path: str, body: Any) -> Any:
        request = urllib.request.Request(  # noqa: S310
            self.url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/_emulator/stats"))

    def jobs(self) -> list[dict[str, Any]]:
        return list(self.get("/_emulator/jobs"))

    def sessions(self) -> list[dict[str, Any]]:
        """Harness sessions with their invocations (docs/scenarios.md)."""
        return list(self.get("/_emulator/sessions"))

    def evaluators(self) -> list[dict[str, Any]]:
        """Evaluators with their update calls and status changes (docs/evaluators.md)."""
        return list(self.get("/_emulator/evaluators"))

    def evaluator(self, evaluator_id: str) -> dict[str, Any]:
        """One evaluator's entry of :meth:`evaluators`."""
        (found,) = [e for e in self.evaluators() if e["evaluatorId"] == evaluator_id]
        return found

    def control_plane(self) -> Any:
        """A boto3 ``bedrock-agentcore-control`` client of this emulator."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "bedrock-agentcore-control", region_name="us-east-1", endpoint_url=self.url,
            aws_access_key_id="test", aws_secret_access_key="test",  # noqa: S106 (emulator)
            config=Config(retries={"total_max_attempts": 1}),
        )  # fmt: skip

    def create_evaluator(self, name: str, tags: dict[str, str] | None = None) -> str:
        """A custom LLM-as-a-judge evaluator, ACTIVE when this returns; its id."""
        control = self.control_plane()
        out = control.create_evaluator(
            evaluatorName=name, evaluatorConfig=SAMPLE_JUDGE, level="SESSION",
            **({"tags": tags} if tags else {}),
        )  # fmt: skip
        evaluator_id = str(out["evaluatorId"])
        _wait(lambda: control.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE")
        return evaluator_id

    def lock(self, name: str, evaluator_ids: list[str]) -> str:
        """An enabled online evaluation configuration referencing the evaluators (which
        locks them for modification); its id."""
        control = self.control_plane()
        out = control.create_online_evaluation_config(
            onlineEvaluationConfigName=name,
            rule={"samplingConfig": {"samplingPercentage": 10.0}},
            dataSourceConfig={"cloudWatchLogs": {"serviceNames": ["demo-agent"],
                                                 "logGroupNames": ["/aws/agent"]}},
            evaluators=[{"evaluatorId": e} for e in evaluator_ids],
            evaluationExecutionRoleArn="arn:aws:iam::123456789012:role/evaluations",
            enableOnCreate=True,
        )  # fmt: skip
        return str(out["onlineEvaluationConfigId"])


@dataclass
class Cluster:
    """Worker and beat processes of one test, all started as ``evalq worker|beat``."""

    env: dict[str, str]
    logs: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def start_worker(self, name: str, concurrency: int = 2, **env: str) -> ManagedProcess:
        log = self.logs / f"{name}.log"
        proc = ManagedProcess(
            name,
            evalq_command("worker", "--concurrency", str(concurrency), "--name", f"{name}@%h"),
            env={**self.env, **env}, log_path=log,
        ).start()  # fmt: skip
        self.processes.append(proc)
        wait_for_line(log, "ready.", 60, proc)
        return proc

    def start_beat(self) -> ManagedProcess:
        log = self.logs / "beat.log"
        proc = ManagedProcess("beat", evalq_command("beat", "--schedule", str(self.logs / "beat")),
                              env=self.env, log_path=log).start()  # fmt: skip
        self.processes.append(proc)
        return proc

    def start_exporter(self) -> str:
        """``evalq exporter`` on a free port; returns its /metrics URL."""
        port = free_port()
        log = self.logs / f"exporter-{port}.log"
        proc = ManagedProcess(
            "exporter",
            evalq_command("exporter", "--host", "127.0.0.1", "--port", str(port)),
            env=self.env, log_path=log,
        ).start()  # fmt: skip
        self.processes.append(proc)
        wait_for_line(log, "exporter listening on", 30, proc)
        return f"http://127.0.0.1:{port}/metrics"

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


class Producer:
    """Another team's service: sends by task name, reads plain JSON outcomes.

    ``queue_arguments`` are those evalq declares its queues with (RabbitMQ refuses a
    declaration that differs): ``{"x-queue-type": "quorum"}`` for quorum queues.
    ``connection_options`` go to kombu's ``Connection`` (``ssl``, ``transport_options``).
    """

    def __init__(
        self,
        broker_url: str,
        *,
        queue_arguments: dict[str, str] | None = None,
        **connection_options: Any,
    ) -> None:
        self.app = Celery("foreign-producer", broker=broker_url)
        self.app.conf.update(
            task_serializer="json",
            accept_content=["json"],
            broker_use_ssl=connection_options.get("ssl", False),
            broker_transport_options=connection_options.get("transport_options", {}),
        )
        if queue_arguments and queue_arguments.get("x-queue-type") == "quorum":
            self.app.conf.task_create_missing_queue_type = "quorum"
        self.broker_url = broker_url
        self.queue_arguments = queue_arguments
        self.connection_options = connection_options

    def connection(self) -> Connection:
        return Connection(self.broker_url, **self.connection_options)

    def submit(self, request: Any) -> None:
        self.app.send_task("evals.submit", kwargs={"request": request}, queue="evals.requests")

    def update_evaluator(self, request: Any) -> None:
        """Send an evaluator rollout (``evals.evaluator.update``) by name."""
        self.app.send_task(
            "evals.evaluator.update", kwargs={"request": request}, queue="evals.requests"
        )

    def collect(
        self,
        count: int,
        *,
        timeout: float,
        queue: str = "evals.results",
        seen: set[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Read messages from ``queue`` until ``count`` distinct requests have an outcome.
        ``seen``: requests whose outcome came earlier; a repeat of theirs (delivery is at
        least once) does not count."""
        messages: list[dict[str, Any]] = []
        seen = set(seen or ())
        count += len(seen)
        deadline = time.monotonic() + timeout
        with self.connection() as conn:
            simple = conn.SimpleQueue(queue, queue_args=self.queue_arguments)
            try:
                while len(seen) < count and time.monotonic() < deadline:
                    try:
                        message = simple.get(block=True, timeout=0.5)
                    except simple.Empty:
                        continue
                    messages.append(message.payload)
                    seen.add(message.payload["request_id"])
                    message.ack()
            finally:
                simple.close()
        return messages

    def drain(self, queue: str = "evals.results", settle: float = 1.0) -> list[dict[str, Any]]:
        """Everything left on ``queue`` after it stayed empty for ``settle`` seconds."""
        messages: list[dict[str, Any]] = []
        with self.connection() as conn:
            simple = conn.SimpleQueue(queue, queue_args=self.queue_arguments)
            try:
                while True:
                    try:
                        message = simple.get(block=True, timeout=settle)
                    except simple.Empty:
                        return messages
                    messages.append(message.payload)
                    message.ack()
            finally:
                simple.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    directory = tmp_path_factory.mktemp("redis")
    server = RedisServer(directory=directory, log_path=directory / "redis.log").start()
    yield server
    server.stop()


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    redis.Redis(port=redis_server.port).flushall()
    return redis_server


@pytest.fixture
def emulator_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[ManagedProcess] = []

    def start(*options: str) -> Emulator:
        port = free_port()
        log = tmp_path / f"emulator-{port}.log"
        proc = ManagedProcess("emulator", evalq_command("emulator", "--port", str(port), *options),
                              log_path=log).start()  # fmt: skip
        started.append(proc)
        wait_for_line(log, "emulator listening on", 30, proc)
        return Emulator(f"http://127.0.0.1:{port}", proc)

    yield start
    for proc in started:
        proc.stop()


@dataclass
class Broker:
    """The broker of one test: ``kind`` is ``redis`` or ``rabbitmq``."""

    kind: str
    url: str
    #: The test's private vhost on RabbitMQ (None on Redis).
    vhost: RabbitVhost | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_brokers: run the test on Redis and on RabbitMQ")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses a broker runs on Redis; those marked ``both_brokers`` (the
    delivery-critical suites) on RabbitMQ too."""
    if "broker" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "broker" in (names.split(",") if isinstance(names, str) else names):
            return  # the test chose its broker
    both = metafunc.definition.get_closest_marker("both_brokers") is not None
    metafunc.parametrize("broker", BROKERS if both else BROKERS[:1], indirect=True)


@pytest.fixture(scope="session")
def rabbit_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitServer]:
    """The RabbitMQ node of the session (started only when a test asks for it): the
    machine's when it answers, else a private one, stopped after the session."""
    node, started = session_node(tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield node
    finally:
        if started is not None:
            started.stop()


@pytest.fixture
def broker(request: pytest.FixtureRequest, clean_redis: RedisServer) -> Iterator[Broker]:
    if request.param == "redis":
        yield Broker("redis", f"{clean_redis.url}/0")
        return
    # Asked for here, not as an argument: a session on Redis only starts no RabbitMQ.
    vhost = RabbitVhost(request.getfixturevalue("rabbit_node")).create()
    try:
        yield Broker("rabbitmq", vhost.url, vhost)
    finally:
        vhost.delete()


@pytest.fixture
def rabbit_vhost(rabbit_node: RabbitServer) -> Iterator[RabbitVhost]:
    """A private vhost on the session's RabbitMQ node, deleted after the test."""
    vhost = RabbitVhost(rabbit_node).create()
    try:
        yield vhost
    finally:
        vhost.delete()


@pytest.fixture
def evalq_env(clean_redis: RedisServer, broker: Broker) -> dict[str, str]:
    """Settings for the processes of one test (the emulator URL is added by the test)."""
    return {
        "EVALQ_BROKER_URL": broker.url,
        "EVALQ_REDIS_URL": f"{clean_redis.url}/1",
        "EVALQ_AWS_ACCESS_KEY_ID": "test",
        "EVALQ_AWS_SECRET_ACCESS_KEY": "test",
        **FAST_SETTINGS,
    }


@pytest.fixture
def cluster_factory(evalq_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    clusters: list[Cluster] = []

    def start(emulator: Emulator, **settings: str) -> Cluster:
        env = {
            **evalq_env,
            "EVALQ_AGENTCORE_ENDPOINT_URL": emulator.url,
            "EVALQ_HEARTBEAT_DIR": str(tmp_path / "heartbeats"),
            **settings,
        }
        cluster = Cluster(env=env, logs=tmp_path)
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


@dataclass
class Service:
    """evalq as a user runs it: an emulator, one ``evalq worker`` and ``evalq beat``."""

    emulator: Emulator
    cluster: Cluster
    worker: ManagedProcess
    broker: Broker


@pytest.fixture
def service(emulator_factory: Any, cluster_factory: Any, broker: Broker) -> Service:
    """The emulator at time scale 40, a worker of 2 processes and beat, on each broker."""
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator)
    worker = cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()
    return Service(emulator, cluster, worker, broker)


@pytest.fixture
def producer(evalq_env: dict[str, str]) -> Producer:
    return Producer(evalq_env["EVALQ_BROKER_URL"])
