"""Slot utilisation, idle gaps, detection delay and Get calls per job, evalq against the
baseline (a plain Celery task polling every 30 emulated seconds) on the same emulator.

Time scale: the emulator runs ``SCALE`` emulated seconds per real second, and every evalq
delay that is a setting (polls, ticks, retries) is divided by the same factor, so it keeps
its true weight against the emulated job durations. What cannot be scaled (Celery hops,
Redis and HTTP round trips, the 3 TPS start quota, which is in real seconds) counts
``SCALE`` times its true weight: the figures are conservative for evalq. Every figure is
computed from the emulator's own timestamps and reported in emulated seconds.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.bench.harness import Rig, Row, mean, percentile, rig, wait_until
from tests.bench.requests import bench_request
from worker.jobs.store import JobStore
from worker.keys import Keys

SCALE = 30.0
QUOTA = 5
#: evalq's settings that are delays, at their production defaults (seconds).
DELAY_SETTINGS = {
    "EVALQ_POLL_INITIAL": 2.0,
    "EVALQ_POLL_MAX": 300.0,
    "EVALQ_POLL_MIN": 0.5,
    "EVALQ_POLL_END_MARGIN": 1.0,
    "EVALQ_TICK_INTERVAL": 1.0,
    "EVALQ_RETRY_INITIAL": 1.0,
    "EVALQ_RETRY_MAX": 60.0,
    "EVALQ_QUOTA_BACKOFF": 5.0,
    "EVALQ_BROKER_FETCH_WAIT": 0.5,
    "EVALQ_WATCH_RECHECK_SECONDS": 30.0,
}


def scaled_settings(scale: float) -> dict[str, str]:
    return {name: f"{value / scale:.6g}" for name, value in DELAY_SETTINGS.items()}


@dataclass(frozen=True)
class SlotFigures:
    utilisation: float
    gaps: list[float]
    mean_duration: float


def slot_figures(jobs: list[tuple[float, float]], quota: int) -> SlotFigures:
    """From (start, end) of every job: the share of slot-time busy while the backlog had
    work (from the moment every slot was first busy to the last start), and the idle gap
    from each job's end to the start that took its slot (the k-th end frees the slot of
    the (quota + k)-th start)."""
    starts = sorted(start for start, _ in jobs)
    ends = sorted(end for _, end in jobs)
    begin, finish = starts[quota - 1], starts[-1]
    busy = sum(max(0.0, min(end, finish) - max(start, begin)) for start, end in jobs)
    utilisation = busy / (quota * (finish - begin)) if finish > begin else float("nan")
    gaps = [starts[quota + k] - ends[k] for k in range(len(starts) - quota)]
    return SlotFigures(utilisation, gaps, mean([end - start for start, end in jobs]))


def slots(quick: bool) -> list[Row]:
    count = 12 if quick else 40
    low, high = (120.0, 300.0) if quick else (240.0, 840.0)
    rng = random.Random(5)
    durations = [round(rng.uniform(low, high)) for _ in range(count)]
    with rig("--time-scale", f"{SCALE:g}", "--max-active", str(QUOTA),
             EVALQ_MAX_ACTIVE_JOBS=str(QUOTA), **scaled_settings(SCALE)) as r:  # fmt: skip
        ours = _evalq_run(r, durations, "bench")
        r.emulator.post("/_emulator/reset", {})
        # Jobs that asked for insights: only GetBatchEvaluation reports them.
        insights = _evalq_run(r, durations[: count // 2], "insight", insights=True)
        r.emulator.post("/_emulator/reset", {})
        # The same, with the listing watcher off: each running job polls on its own.
        r.env["EVALQ_WATCH_BY_LIST"] = "false"
        polled = _evalq_run(r, durations, "poll")
        r.emulator.post("/_emulator/reset", {})
        theirs = _baseline_run(r, durations)
    return _rows(ours, polled, theirs, count, low, high, insights)


def _request(i: int, duration: float, prefix: str = "bench", insights: bool = False
             ) -> dict[str, Any]:  # fmt: skip
    # About 6 emulated seconds per session, as the emulator's own model has it.
    request = bench_request(i, sessions=max(1, round(duration / 6)), duration=duration,
                            prefix=prefix)  # fmt: skip
    if insights:
        request["evaluation"]["insights"] = [{"insightId": "Builtin.FailureAnalysis"}]
    return request


def _evalq_run(r: Rig, durations: list[int], prefix: str, insights: bool = False
               ) -> dict[str, Any]:  # fmt: skip
    count = len(durations)
    workers = r.start_workers([f"{prefix}-w1", f"{prefix}-w2"], concurrency=2)
    beat = r.start_beat()
    producer = r.producer()
    for i, duration in enumerate(durations):
        producer.submit(_request(i, duration, prefix=prefix, insights=insights))
    outcomes = producer.collect(count, timeout=60 + 3 * sum(durations) / SCALE / QUOTA)
    for proc in [*workers, beat]:
        r.stop(proc)
    remote = {j["batchEvaluationId"]: j for j in r.emulator.jobs()}
    store = JobStore(r.store, Keys())
    detected, published = [], []
    for outcome in outcomes:
        job = store.get(outcome["request_id"])
        assert job is not None
        assert job.remote_ended_at is not None
        end = remote[outcome["batch_evaluation_id"]]["ended_at"]
        detected.append(job.remote_ended_at - end)
        published.append(datetime.fromisoformat(outcome["published_at"]).timestamp() - end)
    return {
        "slots": slot_figures([(j["created_at"], j["ended_at"]) for j in remote.values()], QUOTA),
        "detected": detected,
        "published": published,
        "gets": r.emulator.stats()["calls"].get("GetBatchEvaluation", 0) / count,
        "lists": r.emulator.stats()["calls"].get("ListBatchEvaluations", 0) / count,
    }


def _baseline_run(r: Rig, durations: list[int]) -> dict[str, Any]:
    r.start_baselines(["baseline"], concurrency=QUOTA)
    producer = r.producer()
    for i, duration in enumerate(durations):
        request = _request(i, duration, prefix="base")
        producer.app.send_task("baseline.run", args=[request, SCALE], queue="baseline")
    store = r.store
    timeout = 60 + 3 * sum(durations) / SCALE / QUOTA
    wait_until(lambda: store.llen("baseline:done") >= len(durations), timeout, interval=0.2)
    done = [json.loads(x) for x in store.lrange("baseline:done", 0, -1)]
    remote = {j["batchEvaluationId"]: j for j in r.emulator.jobs()}
    return {
        "slots": slot_figures([(j["created_at"], j["ended_at"]) for j in remote.values()], QUOTA),
        "detected": [d["detected_at"] - remote[d["id"]]["ended_at"] for d in done],
        "gets": sum(d["gets"] for d in done) / len(done),
    }


def _rows(ours: dict[str, Any], polled: dict[str, Any], theirs: dict[str, Any], count: int,
          low: float, high: float, insights: dict[str, Any]) -> list[Row]:  # fmt: skip
    def em(seconds: float) -> float:
        return seconds * SCALE

    def pcts(values: list[float]) -> str:
        return f"p50 {em(percentile(values, 50)):.1f} s, p95 {em(percentile(values, 95)):.1f} s"

    def p95(values: list[float]) -> float:
        return percentile(values, 95)

    a, b = ours["slots"], theirs["slots"]
    gap_share = percentile(a.gaps, 95) / a.mean_duration
    setup = (f"{count} jobs of {low:g}-{high:g} emulated s, quota {QUOTA}, time scale "
             f"{SCALE:g}x (evalq delays / {SCALE:g}); emulated seconds")  # fmt: skip
    tick = DELAY_SETTINGS["EVALQ_TICK_INTERVAL"]
    return [
        ("slot utilisation", f"{a.utilisation:.2%}", f"{b.utilisation:.2%}",
         f"{a.utilisation / b.utilisation:.2f}", setup),
        ("idle gap: remote end -> next start", pcts(a.gaps), pcts(b.gaps),
         f"{p95(a.gaps) / p95(b.gaps):.2f} (p95)",
         f"evalq p95 = {gap_share:.2%} of the mean job ({em(a.mean_duration):.0f} s)"),
        ("detection: remote end -> seen", pcts(ours["detected"]), pcts(theirs["detected"]),
         f"{p95(ours['detected']) / p95(theirs['detected']):.2f} (p95)",
         f"evalq max {em(max(ours['detected'])):.1f} s; remote end -> outcome published: "
         f"{pcts(ours['published'])}"),
        ("detection: listing watch vs per-job polls", pcts(ours["detected"]),
         pcts(polled["detected"]), f"{p95(ours['detected']) / p95(polled['detected']):.2f} (p95)",
         f"goal p95 <= one tick + 0.5 s = {tick + 0.5:g} s"),
        ("Get calls per job", f"{ours['gets']:.2f}", f"{theirs['gets']:.1f}",
         f"{ours['gets'] / theirs['gets']:.2f}", "baseline polls every 30 emulated s"),
        ("Get calls per job: listing watch vs per-job polls", f"{ours['gets']:.2f}",
         f"{polled['gets']:.2f}", f"{ours['gets'] / polled['gets']:.2f}",
         f"goal <= 0.05 (no insights: the listing holds the outcome); List calls per job "
         f"{ours['lists']:.1f} (one per tick while jobs run)"),
        ("Get calls per job with insights: listing watch vs per-job polls",
         f"{insights['gets']:.2f}", f"{polled['gets']:.2f}",
         f"{insights['gets'] / polled['gets']:.2f}",
         "goal 1.0: only GetBatchEvaluation reports insights"),
    ]  # fmt: skip
