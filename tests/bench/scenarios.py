"""Benchmark scenarios. Each returns table rows: (scenario, evalq, baseline, ratio, notes)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from api_contracts.examples import sample_request
from tests.bench.backlog import backlog
from tests.bench.fairness import fairness
from tests.bench.harness import Rig, Row, percentile, rig, wait_until
from tests.bench.janitor import janitor
from tests.bench.slots import slots
from tests.bench.throttling import throttling
from worker.testing.processes import ManagedProcess


def _request(i: int, *, producer: str = "bench", sessions: int = 2) -> dict[str, Any]:
    request = sample_request(request_id=f"bench-{i:06d}", producer=producer)
    request["evaluation"]["tags"] = {"emulator:sessions": str(sessions)}
    return request


def intake(quick: bool) -> list[Row]:
    """Requests/s that evals.submit accepts into the durable backlog, against a no-op
    Celery task on the same broker and the same worker."""
    count = 300 if quick else 3000
    with rig("--time-scale", "1") as r:
        r.start_worker("intake", concurrency=2)
        producer = r.producer()
        broker = r.broker

        def drained() -> bool:
            return broker.llen("evals.requests") == 0 and broker.hlen("unacked") == 0

        start = time.perf_counter()
        for _ in range(count):
            producer.app.send_task("evals.ping", queue="evals.requests")
        wait_until(drained, 300)
        noop_rate = count / (time.perf_counter() - start)

        requests = [_request(i, producer=f"p{i % 7}") for i in range(count)]
        store = r.store
        start = time.perf_counter()
        for request in requests:
            producer.submit(request)
        wait_until(lambda: store.zcard("evalq:jobs") >= count and drained(), 300)
        submit_rate = count / (time.perf_counter() - start)
    return [("intake (requests/s into the backlog)", f"{submit_rate:.0f}/s",
             f"{noop_rate:.0f}/s no-op task", f"{submit_rate / noop_rate:.2f}",
             f"{count} messages, 1 worker x 2 processes")]  # fmt: skip


def end_to_outcome(quick: bool) -> list[Row]:
    """Delay from a remote job's end to evalq's published outcome (from the emulator's own
    end time), against the fixed-30 s polling baseline, at one time scale for both."""
    count = 10 if quick else 25
    scale = 20.0
    rng = random.Random(5)
    sessions = [rng.randint(1, 6) for _ in range(count)]
    with rig("--time-scale", str(scale)) as r:
        r.start_worker("e2o", concurrency=2)
        r.start_beat()
        producer = r.producer()
        for i in range(count):
            producer.submit(_request(i, sessions=sessions[i]))
        outcomes = producer.collect(count, timeout=600)
        ended = {j["batchEvaluationId"]: j["ended_at"] for j in r.emulator.jobs()}
        ours = [
            datetime.fromisoformat(o["published_at"]).timestamp() - ended[o["batch_evaluation_id"]]
            for o in outcomes
        ]
        gets_ours = r.emulator.stats()["calls"].get("GetBatchEvaluation", 0) / count

        r.emulator.post("/_emulator/reset", {})
        baseline = _run_baseline(r, [_request(10_000 + i, sessions=sessions[i])
                                     for i in range(count)], scale)  # fmt: skip
        ended = {j["batchEvaluationId"]: j["ended_at"] for j in r.emulator.jobs()}
        theirs = [b["detected_at"] - ended[b["id"]] for b in baseline]
        gets_theirs = sum(b["gets"] for b in baseline) / count

    def fmt(values: list[float]) -> str:
        return f"p50 {percentile(values, 50):.2f}s p95 {percentile(values, 95):.2f}s"

    p95_ratio = percentile(ours, 95) / percentile(theirs, 95)
    return [
        ("remote end -> outcome published", fmt(ours), fmt(theirs), f"{p95_ratio:.2f} (p95)",
         f"{count} jobs, time scale {scale:g}x (real seconds)"),
        ("Get calls per job", f"{gets_ours:.1f}", f"{gets_theirs:.1f}",
         f"{gets_ours / gets_theirs:.2f}", "fixed 30 emulated s polls in the baseline"),
    ]  # fmt: skip


def _run_baseline(r: Rig, requests: list[dict[str, Any]], scale: float) -> list[dict[str, Any]]:
    import sys

    argv = [sys.executable, "-m", "celery", "-A", "tests.bench.baseline", "worker",
            "-Q", "baseline", "-c", "5", "--without-gossip", "--without-mingle",
            "-n", "baseline@%h", "-l", "INFO"]  # fmt: skip
    proc = ManagedProcess("baseline", argv, env=r.env, log_path=r.logs / "baseline.log").start()
    r.processes.append(proc)
    from worker.testing.processes import wait_for_line

    wait_for_line(r.logs / "baseline.log", "ready.", 60, proc)
    producer = r.producer()
    for request in requests:
        producer.app.send_task("baseline.run", args=[request, scale], queue="baseline")
    store = r.store
    wait_until(lambda: store.llen("baseline:done") >= len(requests), 600, interval=0.2)
    return [json.loads(x) for x in store.lrange("baseline:done", 0, -1)]


ALL: dict[str, Callable[..., list[Row]]] = {
    "intake": intake,
    "end_to_outcome": end_to_outcome,
    "slots": slots,
    "backlog": backlog,
    "throttling": throttling,
    "fairness": fairness,
    "janitor": janitor,
}
