"""Operating evalq: the exporter's numbers against what happened, task events, the health
check, warm shutdown and time limits. Real worker, beat and exporter processes, a private
redis-server and the emulator over HTTP."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import redis
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from api_contracts.examples import sample_request
from evalq_emulators.processes import RedisServer, evalq_command

#: Emulator operation names by the boto3 names the exporter labels calls with.
#: evalq's backend operations (the metric's label) and the AgentCore calls they make.
_OPERATIONS = {
    "start": "StartBatchEvaluation",
    "get": "GetBatchEvaluation",
    "stop": "StopBatchEvaluation",
    "delete": "DeleteBatchEvaluation",
    "list": "ListBatchEvaluations",
}


def _request(i: int, *, outcome: str | None = None, sessions: int = 2) -> dict:
    request = sample_request(request_id=f"ops-{i:03d}", producer="team-ops")
    tags = {"emulator:sessions": str(sessions)}
    if outcome:
        tags["emulator:outcome"] = outcome
    request["evaluation"]["tags"] = tags
    return request


class Scrape:
    """One scrape, parsed by prometheus_client's own parser."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url, timeout=10) as response:
            self.text = response.read().decode()
        self.samples = [
            sample for family in text_string_to_metric_families(self.text)
            for sample in family.samples
        ]  # fmt: skip

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels``."""
        return sum(
            s.value for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )  # fmt: skip

    def by(self, name: str, label: str, **labels: str) -> dict[str, float]:
        found: dict[str, float] = collections.defaultdict(float)
        for s in self.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                found[s.labels[label]] += s.value
        return {k: v for k, v in found.items() if v}

    def names(self) -> set[str]:
        return {s.name for s in self.samples}


def _scrape_until(url: str, ready, timeout: float = 60.0) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        scrape = Scrape(url)
        if ready(scrape) or time.monotonic() > deadline:
            return scrape
        time.sleep(0.3)


def test_the_exporter_counts_what_happened(emulator_factory, cluster_factory, producer):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator, EVALQ_JANITOR_INTERVAL="1")
    worker = cluster.start_worker("w1", concurrency=2)
    beat = cluster.start_beat()
    url = cluster.start_exporter()

    statuses = ["COMPLETED"] * 4 + ["FAILED", "COMPLETED_WITH_ERRORS"]
    requests = [_request(i, outcome=s) for i, s in enumerate(statuses)]
    for request in requests:
        producer.submit(request)
    producer.submit(requests[0])  # duplicates: nothing new happens
    producer.submit(requests[1])
    conflicting = _request(2, outcome="COMPLETED")
    conflicting["evaluation"]["description"] = "same request_id, another payload"
    producer.submit(conflicting)
    producer.submit({"schema_version": 1, "request_id": "bad-1", "producer": "team-ops"})
    producer.submit("not even an object")

    outcomes = producer.collect(len(requests), timeout=120)
    by_request = {o["request_id"]: o for o in outcomes}  # delivery is at least once
    published = collections.Counter(o["status"] for o in by_request.values())
    assert sum(published.values()) == len(requests)

    scrape = _scrape_until(url, lambda s: (
        s.value("evalq_outcomes_total") >= len(requests)
        and s.value("evalq_janitor_runs_total", result="ok") >= 1
        and s.value("evalq_account_remote_jobs") == len(requests)  # a sweep saw them all
        and s.value("evalq_requests_total") >= 10
        and s.value("evalq_active_jobs") == 0
    ))  # fmt: skip
    # No more ticks or sweeps: the counters and the emulator's stats hold still.
    beat.stop()
    time.sleep(2.0)
    beat_age = time.time() - scrape.value("evalq_last_tick_timestamp_seconds")
    workers = scrape.by("evalq_workers", "role")
    scrape = Scrape(url)

    labels = {"backend": "agentcore", "target": "default"}
    assert scrape.by("evalq_requests_total", "outcome", **labels) == {
        "created": 6, "duplicate": 2, "conflict": 1,
    }  # fmt: skip
    assert scrape.by("evalq_requests_total", "outcome", backend="unknown") == {"rejected": 2}
    assert scrape.by("evalq_outcomes_total", "status", **labels) == dict(published)
    assert scrape.value("evalq_job_duration_seconds_count", **labels) == len(requests)
    assert scrape.value("evalq_queue_wait_seconds_count", **labels) == len(requests)

    # Every remote call counted and timed once, as the service saw it.
    calls = scrape.by("evalq_remote_calls_total", "operation", **labels)
    served = {op: n for op, n in emulator.stats()["calls"].items() if n}
    assert {_OPERATIONS[op]: n for op, n in calls.items()} == served
    assert scrape.by("evalq_remote_call_duration_seconds_count", "operation") == calls
    assert scrape.value("evalq_remote_calls_total", operation="start", result="ok") == len(requests)
    assert scrape.value("evalq_remote_call_duration_seconds_bucket", le="+Inf") == sum(
        calls.values()
    )

    # Dead letters: the gauge holds what the store holds, the counter what was recorded.
    kept = scrape.by("evalq_dead_letters", "reason")
    assert kept == {"idempotency_conflict": 1, "invalid_request": 2}
    assert scrape.by("evalq_dead_letters_recorded_total", "reason") == kept

    # Gauges of the job store and the broker.
    assert scrape.value("evalq_active_jobs", **labels) == 0
    assert scrape.value("evalq_slots", **labels) == 5
    assert scrape.value("evalq_backlog_requests") == 0
    assert workers == {"worker": 1, "beat": 1}
    assert beat_age < 10
    assert scrape.value("evalq_broker_queue_messages", queue="evals.requests") == 0
    assert scrape.value("evalq_account_remote_jobs", **labels) == len(requests)
    assert not any("request_id" in s.labels for s in scrape.samples)

    # Counters live in Redis: a restarted worker does not reset them.
    worker.stop()
    cluster.start_worker("w1b", concurrency=1)
    again = Scrape(url)
    for name in ("evalq_requests_total", "evalq_outcomes_total", "evalq_remote_calls_total"):
        assert again.value(name) >= scrape.value(name) > 0


def test_task_events_reach_an_event_receiver(service, producer):
    """Flower and celery-exporter read task events; evals.submit must send them."""
    app = Celery("monitor", broker=service.cluster.env["EVALQ_BROKER_URL"])
    received: dict[str, str] = {}
    succeeded: set[str] = set()
    listening = threading.Event()
    receivers = []

    def on_received(event):
        received[event["uuid"]] = event["name"]

    def on_succeeded(event):
        succeeded.add(event["uuid"])

    def capture():
        with app.connection() as connection:
            receiver = app.events.Receiver(
                connection,
                handlers={"task-received": on_received, "task-succeeded": on_succeeded},
            )
            receivers.append(receiver)
            listening.set()
            receiver.capture(limit=None, timeout=None, wakeup=False)

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    assert listening.wait(10)
    time.sleep(1.0)  # the receiver subscribes once connected
    producer.submit(_request(1))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        submits = {uuid for uuid, name in received.items() if name == "evals.submit"}
        if submits & succeeded:
            break
        time.sleep(0.2)
    receivers[0].should_stop = True
    thread.join(10)
    submits = {uuid for uuid, name in received.items() if name == "evals.submit"}
    assert submits & succeeded, f"received {received}, succeeded {succeeded}"


def _health(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        evalq_command("health", *args),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_health_sees_stores_heartbeats_and_ticks(emulator_factory, cluster_factory):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator, EVALQ_HEARTBEAT_INTERVAL="0.5")
    worker = cluster.start_worker("w1", concurrency=1)
    cluster.start_beat()
    env = cluster.env
    node = f"--node=w1@{socket.gethostname()}"

    deadline = time.monotonic() + 30
    while _health(env, "--beat", "--max-tick-age=5").returncode and time.monotonic() < deadline:
        time.sleep(0.5)
    beat = _health(env, "--beat", "--max-tick-age=5")
    assert beat.returncode == 0, beat.stdout + beat.stderr
    ok = _health(env, "--worker", node)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   worker heartbeat" in ok.stdout
    assert _health(env).returncode == 0  # role-less: stores and the last tick

    # A worker whose main loop stops turning shows within a few heartbeat intervals.
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        time.sleep(3.0)
        hung = _health(env, "--worker", node)
        assert hung.returncode == 1
        assert "FAIL worker heartbeat" in hung.stderr
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while _health(env, "--worker", node).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _health(env, "--worker", node).returncode == 0

    # An unreachable job store or broker fails the check.
    down = _health({**env, "EVALQ_REDIS_URL": "redis://127.0.0.1:1/1"}, "--worker", node)
    assert down.returncode == 1
    assert "FAIL job store" in down.stderr
    down = _health({**env, "EVALQ_BROKER_URL": "redis://127.0.0.1:1/0"}, "--worker", node)
    assert down.returncode == 1
    assert "FAIL broker" in down.stderr
    assert _health(env, "--worker", "--node=nobody").returncode == 1


def test_health_speaks_to_a_redis_with_a_password_and_a_database(tmp_path):
    server = RedisServer(directory=tmp_path, extra_args=["--requirepass", "s3cret"]).start()
    try:
        url = f"redis://:s3cret@127.0.0.1:{server.port}"
        redis.Redis.from_url(f"{url}/3").set("evalq:last-tick", repr(time.time()))
        env = {"EVALQ_REDIS_URL": f"{url}/3", "EVALQ_BROKER_URL": f"{url}/0"}
        ok = _health(env, "--max-tick-age", "60")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        env_user = {"EVALQ_REDIS_URL": f"redis://default:s3cret@127.0.0.1:{server.port}/3",
                    "EVALQ_BROKER_URL": f"{url}/0"}  # fmt: skip
        assert _health(env_user, "--max-tick-age", "60").returncode == 0
        assert _health({**env, "EVALQ_REDIS_URL": f"{url}/4"}).returncode == 1  # no tick there
        wrong = _health({**env, "EVALQ_BROKER_URL": f"redis://:nope@127.0.0.1:{server.port}/0"})
        assert wrong.returncode == 1
        assert "FAIL broker" in wrong.stderr
    finally:
        server.stop()


def test_health_imports_no_heavy_library():
    """The probe's CPU cost is its imports: none of these may load."""
    code = (
        "import sys; sys.argv = ['evalq', 'health', '--help']\n"
        "from worker.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = {'redis', 'celery', 'kombu', 'boto3', 'botocore', 'pydantic', "
        "'pydantic_settings', 'typer', 'rich', 'structlog', 'asyncio'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _store(env: dict[str, str]) -> redis.Redis:
    return redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)


def test_sigterm_during_traffic_loses_nothing_and_holds_no_slot(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator)
    first = cluster.start_worker("w1", concurrency=2)
    cluster.start_worker("w2", concurrency=2)
    cluster.start_beat()

    requests = [_request(i, sessions=2) for i in range(12)]
    for request in requests:
        producer.submit(request)
    store = _store(cluster.env)
    deadline = time.monotonic() + 30
    while store.scard("evalq:active") < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    # What Kubernetes and systemd do: SIGTERM to the main process, then wait.
    os.kill(first.pid, signal.SIGTERM)
    assert first.proc is not None
    assert first.proc.wait(60) == 0  # a warm shutdown ends cleanly

    outcomes = producer.collect(len(requests), timeout=180)
    assert {o["request_id"] for o in outcomes} == {r["request_id"] for r in requests}
    assert {o["status"] for o in outcomes} == {"COMPLETED"}
    assert store.scard("evalq:active") == 0
    assert store.zcard("evalq:dead") == 0
    assert emulator.stats()["jobs"]["total"] == len(requests)
    assert "Warm shutdown" in (cluster.logs / "w1.log").read_text()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def test_a_hung_pool_process_is_replaced_and_its_work_redone(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(
        emulator,
        EVALQ_REMOTE_TASK_SOFT_TIME_LIMIT="1",
        EVALQ_REMOTE_TASK_TIME_LIMIT="2",
    )
    worker = cluster.start_worker("w1", concurrency=1)
    cluster.start_beat()
    (child,) = _children(worker.pid)
    # Every start takes 3 s: the one pool process is inside the call when it is stopped.
    emulator.post("/_emulator/faults", {"latency_rate": 1.0, "latency_ms": 3000,
                                        "operations": ["StartBatchEvaluation"]})  # fmt: skip
    producer.submit(_request(1))
    deadline = time.monotonic() + 30
    while emulator.stats()["calls"].get("StartBatchEvaluation", 0) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(child, signal.SIGSTOP)  # hung: no signal handler (soft limit) can run
    emulator.post("/_emulator/faults", {})

    outcomes = producer.collect(1, timeout=90)
    assert [o["status"] for o in outcomes] == ["COMPLETED"]
    log = (cluster.logs / "w1.log").read_text()
    assert "Hard time limit (2.0s) exceeded for evals.advance" in log
    assert child not in _children(worker.pid)
    assert len(_children(worker.pid)) == 1
    assert emulator.stats()["jobs"]["total"] == 1
