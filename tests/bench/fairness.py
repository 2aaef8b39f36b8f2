"""Fairness: producer A has 1,000 requests queued; producer B sends a single one, several
times over. How long B waits, and whether B takes the very next slot that frees (goal:
within one slot turnover). Baseline: one FIFO queue, as a plain Celery queue is, where B
waits behind all of A's requests; that wait is extrapolated from the slot turnover measured
in the same run (running 1,000 jobs through 5 slots for it would take hours)."""

from __future__ import annotations

import random
import time
from typing import Any

from tests.bench.harness import Rig, Row, percentile, rig, wait_until
from tests.bench.requests import bench_request
from tests.bench.slots import QUOTA, scaled_settings
from worker.backends.agentcore import client_token

SCALE = 30.0
BURST = 1000


def fairness(quick: bool) -> list[Row]:
    trials = 3 if quick else 6
    rng = random.Random(11)
    with rig("--time-scale", f"{SCALE:g}", "--max-active", str(QUOTA),
             EVALQ_MAX_ACTIVE_JOBS=str(QUOTA), **scaled_settings(SCALE)) as r:  # fmt: skip
        r.start_workers(["w1", "w2"], concurrency=2)
        r.start_beat()
        producer = r.producer()
        for i in range(BURST):
            duration = round(rng.uniform(60, 180))
            producer.submit(bench_request(i, producer="team-a", sessions=duration // 6,
                                          duration=duration, prefix="a"))  # fmt: skip
        wait_until(lambda: r.store.zcard("evalq:jobs") >= BURST, 120, interval=0.2)
        waits = [_trial(r, i, rng) for i in range(trials)]
        turnover = _mean_turnover(r)
    b_waits = [w["wait"] for w in waits]
    firsts = sum(1 for w in waits if w["rank"] == 1)
    fifo = BURST * turnover
    return [
        ("fairness: B's single request waits",
         f"p50 {percentile(b_waits, 50) * SCALE:.1f} s, max {max(b_waits) * SCALE:.1f} s",
         f"~{fifo * SCALE:.0f} s (FIFO, extrapolated)",
         f"{max(b_waits) / fifo:.4f}",
         f"A: {BURST} queued; B took the next free slot in {firsts}/{trials} trials; "
         f"mean slot turnover {turnover * SCALE:.1f} s; emulated s at {SCALE:g}x"),
    ]  # fmt: skip


def _trial(r: Rig, i: int, rng: random.Random) -> dict[str, Any]:
    time.sleep(rng.uniform(0.5, 2.0))
    request = bench_request(i, producer="team-b", sessions=10, duration=60, prefix="b")
    token = client_token(request["request_id"])
    sent = time.time()
    r.producer().submit(request)
    wait_until(lambda: any(j["clientToken"] == token for j in r.emulator.jobs()), 120, 0.1)
    jobs = r.emulator.jobs()
    started = next(j["created_at"] for j in jobs if j["clientToken"] == token)
    # Which start after B's arrival was B's own (1 = the first slot that freed).
    rank = sum(1 for j in jobs if sent <= j["created_at"] <= started)
    return {"wait": started - sent, "rank": rank}


def _mean_turnover(r: Rig) -> float:
    """Seconds between two slot hand-overs: the run's span over the starts after the
    first QUOTA."""
    starts = sorted(j["created_at"] for j in r.emulator.jobs())[QUOTA - 1 :]
    return (starts[-1] - starts[0]) / (len(starts) - 1) if len(starts) > 1 else float("nan")
