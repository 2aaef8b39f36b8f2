"""Deadlines and retention at volume: hundreds of requests with short deadlines against
the account's five slots. Measures what was stopped, expired, published and deleted,
and how far past its deadline any job ran (the bound: one janitor sweep interval).

Run: ``python -m tests.bench --only janitor`` (``--quick`` for a smaller run).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from typing import Any

from evalq_emulators.pytest_plugin import Producer
from tests.bench.harness import Row, percentile, rig, wait_until
from tests.bench.requests import bench_request
from worker.backends.agentcore import client_token

SCALE = 20.0
SWEEP_SECONDS = 2.0
FOREVER = 1e12  # emulated seconds: such a job only ends when it is stopped
#: Requests open at once: more than the account's five slots.
WINDOW = 10


def janitor(quick: bool) -> list[Row]:
    count = 60 if quick else 240
    rng = random.Random(4)
    requests = [_request(i, rng) for i in range(count)]
    with rig("--time-scale", f"{SCALE:g}", EVALQ_JANITOR_INTERVAL=f"{SWEEP_SECONDS:g}") as r:
        r.start_worker("janitor-w1", concurrency=4)
        r.start_beat()
        outcomes = _feed(r.producer(), requests)

        def ours() -> list[dict[str, Any]]:
            return [j for j in r.emulator.jobs() if (j["clientToken"] or "").startswith("evalq-")]

        wait_until(lambda: all(j["deleted_at"] for j in ours()), 300, interval=0.5)
        remote = {j["clientToken"]: j for j in ours()}
    return _rows(requests, outcomes, remote, count)


def _feed(producer: Producer, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Keep ``WINDOW`` requests open (more than the five slots, so some wait in the
    backlog); send the next one whenever an outcome arrives."""
    outcomes: dict[str, dict[str, Any]] = {}
    sent = 0
    while len(outcomes) < len(requests):
        while sent < len(requests) and sent - len(outcomes) < WINDOW:
            producer.submit(requests[sent])
            sent += 1
        arrived = producer.collect(1, timeout=60)
        if not arrived:
            raise TimeoutError(f"no outcome for 60 s; {len(outcomes)} of {len(requests)} so far")
        outcomes |= {o["request_id"]: o for o in arrived}
    return outcomes


def _request(i: int, rng: random.Random) -> dict[str, Any]:
    # Half run until stopped; half end on their own within a second or two.
    duration = FOREVER if i % 2 == 0 else rng.uniform(6, 30)
    return bench_request(
        i, prefix="deadline", duration=duration, deadline_seconds=rng.randint(2, 8),
        retention_seconds=1,
    )  # fmt: skip


def _rows(
    requests: list[dict[str, Any]],
    outcomes: dict[str, dict[str, Any]],
    remote: dict[str, dict[str, Any]],
    count: int,
) -> list[Row]:
    deadline = {
        q["request_id"]: _epoch(outcomes[q["request_id"]]["accepted_at"]) + q["deadline_seconds"]
        for q in requests
        if q["request_id"] in outcomes
    }
    overrun: list[float] = []
    for request_id in deadline:
        job = remote.get(client_token(request_id))
        if job is None:
            continue
        ran_until = job["stop_requested_at"] or job["ended_at"]
        overrun.append(max(0.0, ran_until - deadline[request_id]))
    unstarted = [o for o in outcomes.values() if not o["batch_evaluation_id"]]
    expiry_lag = [_epoch(o["published_at"]) - deadline[o["request_id"]] for o in unstarted]
    statuses = Counter(o["status"] for o in outcomes.values())
    stopped = sum(1 for j in remote.values() if j["stop_requested_at"])
    deleted = sum(1 for j in remote.values() if j["deleted_at"])
    worst = max(overrun, default=0.0)
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
    return [
        ("janitor: remote jobs started / stopped / deleted",
         f"{len(remote)} / {stopped} / {deleted}", f"{count} requests", "",
         f"2-8 s deadlines, {WINDOW} open at once, retention 1 s, {SCALE:g}x"),
        ("janitor: outcomes published", f"{len(outcomes)}", f"{count} requests",
         f"{len(outcomes) / count:.2f}", by_status),
        ("janitor: worst run past a deadline", f"{worst:.2f}s (p95 {percentile(overrun, 95):.2f}s)",
         f"{SWEEP_SECONDS:g}s (1 sweep)", f"{worst / SWEEP_SECONDS:.2f}",
         "stop requested - deadline, over every started job"),
        ("janitor: backlog expiry after deadline",
         f"max {max(expiry_lag, default=0.0):.2f}s (p95 {percentile(expiry_lag, 95):.2f}s)",
         f"{SWEEP_SECONDS:g}s (1 sweep)", "",
         f"{len(unstarted)} requests expired before they started"),
    ]  # fmt: skip


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
