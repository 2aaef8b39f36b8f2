"""Shared plumbing of the benchmarks: the same real parts the integration tests use."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from evalq_emulators.processes import (
    ManagedProcess,
    RedisServer,
    evalq_command,
    free_port,
    wait_for_line,
)
from evalq_emulators.pytest_plugin import FAST_SETTINGS, Emulator, Producer
from worker.keys import Keys
from worker.settings import Settings

#: One table row: (scenario, evalq, baseline, ratio, notes).
Row = tuple[str, str, str, str, str]


@dataclass
class Rig:
    redis_server: RedisServer
    emulator: Emulator
    env: dict[str, str]
    logs: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    @property
    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["EVALQ_BROKER_URL"], decode_responses=True)

    @property
    def store(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["EVALQ_REDIS_URL"], decode_responses=True)

    def producer(self) -> Producer:
        return Producer(self.env["EVALQ_BROKER_URL"])

    def start_worker(
        self, name: str, concurrency: int = 2, queues: str | None = None, **env: str
    ) -> ManagedProcess:
        return self.start_workers([name], concurrency, queues, **env)[0]

    def start_workers(
        self, names: list[str], concurrency: int = 2, queues: str | None = None, **env: str
    ) -> list[ManagedProcess]:
        """Start ``evalq worker`` processes side by side (on ``queues``, comma-separated, or
        the default ones), then wait until each is ready."""
        started = []
        for name in names:
            log = self.logs / f"{name}.log"
            argv = evalq_command("worker", "-c", str(concurrency), "--name", f"{name}@%h",
                                 *(("--queues", queues) if queues else ()))  # fmt: skip
            proc = ManagedProcess(name, argv, env={**self.env, **env}, log_path=log)
            started.append(proc.start())
        self.processes += started
        for proc in started:
            wait_for_line(self.logs / f"{proc.name}.log", "ready.", 60, proc)
        return started

    def start_beat(self) -> ManagedProcess:
        """Start beat and wait for its first tick to have run (the workers are up): a run
        measures evalq at work, not beat's start-up, during which nothing ticks and no
        listing watches the first jobs."""
        started = time.time()
        argv = evalq_command("beat", "--schedule", str(self.logs / "beat"))
        proc = ManagedProcess("beat", argv, env=self.env, log_path=self.logs / "beat.log")
        self.processes.append(proc.start())
        last_tick = Keys(self.env.get("EVALQ_KEY_PREFIX", "evalq")).last_tick
        wait_until(lambda: float(self.store.get(last_tick) or 0) > started, 60)
        return proc

    def start_baselines(self, names: list[str], concurrency: int) -> list[ManagedProcess]:
        """Plain Celery workers running ``tests.bench.baseline`` (queue ``baseline``)."""
        started = []
        for name in names:
            argv = [sys.executable, "-m", "celery", "-A", "tests.bench.baseline", "worker",
                    "-Q", "baseline", "-c", str(concurrency), "--without-gossip",
                    "--without-mingle", "--without-heartbeat", "-n", f"{name}@%h",
                    "-l", "INFO"]  # fmt: skip
            log = self.logs / f"{name}.log"
            started.append(ManagedProcess(name, argv, env=self.env, log_path=log).start())
        self.processes += started
        for proc in started:
            wait_for_line(self.logs / f"{proc.name}.log", "ready.", 60, proc)
        return started

    def start_emulator(self, *options: str) -> Emulator:
        """Another emulator process (another account), stopped with the rig."""
        port = free_port()
        log = self.logs / f"emulator-{port}.log"
        argv = evalq_command("emulator", "--port", str(port), *options)
        proc = ManagedProcess(f"emulator-{port}", argv, log_path=log).start()
        self.processes.insert(0, proc)
        wait_for_line(log, "emulator listening on", 30, proc)
        return Emulator(f"http://127.0.0.1:{port}", proc)

    def stop(self, proc: ManagedProcess) -> None:
        proc.stop()
        self.processes.remove(proc)


@contextmanager
def rig(*emulator_options: str, **settings: str) -> Iterator[Rig]:
    """A private redis-server, an emulator, and settings for workers; all stopped after."""
    logs = Path(tempfile.mkdtemp(prefix="evalq-bench-"))
    server = RedisServer(directory=logs, log_path=logs / "redis.log").start()
    port = free_port()
    log = logs / "emulator.log"
    emulator_proc = ManagedProcess(
        "emulator", evalq_command("emulator", "--port", str(port), *emulator_options), log_path=log
    ).start()
    processes: list[ManagedProcess] = [emulator_proc]
    try:
        wait_for_line(log, "emulator listening on", 30, emulator_proc)
        emulator = Emulator(f"http://127.0.0.1:{port}", emulator_proc)
        env = {
            "EVALQ_BROKER_URL": f"{server.url}/0",
            "EVALQ_REDIS_URL": f"{server.url}/1",
            "EVALQ_AGENTCORE_ENDPOINT_URL": emulator.url,
            "EVALQ_AWS_ACCESS_KEY_ID": "bench",
            "EVALQ_AWS_SECRET_ACCESS_KEY": "bench",
            **FAST_SETTINGS,
            **settings,
        }
        the_rig = Rig(server, emulator, env, logs, processes)
        yield the_rig
    finally:
        for proc in reversed(processes):
            proc.stop()
        server.stop()


def production_settings(*names: str) -> dict[str, str]:
    """The production defaults of these settings, as environment variables: to take back
    what ``FAST_SETTINGS`` (the tests' short leases and timeouts) changed."""
    defaults = Settings.model_fields
    return {f"EVALQ_{name.upper()}": str(defaults[name].default) for name in names}


def wait_until(predicate: Any, timeout: float, interval: float = 0.01) -> float:
    """Seconds until ``predicate()`` held; raises after ``timeout``."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(interval)
    return time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def rss_mb(pid: int) -> float:
    """Resident memory of one process (MB), from /proc."""
    return _proc_kb(f"/proc/{pid}/status", "VmRSS:") / 1024


def pss_mb(pid: int) -> float:
    """Proportional set size (MB): resident memory with pages shared between processes
    (a Celery worker and its forked pool) divided among them, so a tree's PSS adds up."""
    return _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:") / 1024


def _proc_kb(path: str, field: str) -> float:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return float("nan")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (a Celery worker and its pool processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found += process_tree(int(child))
    return found
