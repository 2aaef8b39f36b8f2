"""Throttling: 4 worker processes share the account's 3 TPS start quota.

Slots never limit the starts here (emulator and evalq allow thousands of active jobs, and
jobs run for an emulated hour), so the start rate is the rate limiter's alone. Baseline:
4 plain Celery workers with Celery's own ``rate_limit="3/s"`` (per worker) and botocore's
standard retries, as a team without evalq would write it."""

from __future__ import annotations

from typing import Any

from tests.bench.harness import Rig, Row, rig, wait_until
from tests.bench.requests import bench_request

QUOTA_TPS = 3.0
WORKERS = 4


def throttling(quick: bool) -> list[Row]:
    count = 45 if quick else 150
    many = str(100_000)
    with rig("--time-scale", "1", "--max-active", many, "--max-jobs", many,
             EVALQ_MAX_ACTIVE_JOBS=many, EVALQ_ACCOUNT_MAX_JOBS=many,
             EVALQ_ACCOUNT_HIGH_WATER=many, EVALQ_POLL_INITIAL="30",
             EVALQ_POLL_MAX="300") as r:  # fmt: skip
        r.start_workers([f"w{i}" for i in range(WORKERS)], concurrency=1)
        r.start_beat()
        producer = r.producer()
        for i in range(count):
            producer.submit(bench_request(i, duration=3600))
        ours = _measure(r, count)
        for proc in [p for p in r.processes if p.name.startswith(("w", "beat"))]:
            r.stop(proc)

        r.emulator.post("/_emulator/reset", {})
        r.start_baselines([f"baseline{i}" for i in range(WORKERS)], concurrency=1)
        for i in range(count):
            request = bench_request(i, duration=3600, prefix="base")
            producer.app.send_task("baseline.start", args=[request], queue="baseline")
        store = r.store
        wait_until(lambda: sum(map(int, store.hvals("baseline:starts"))) >= count, 900, 0.5)
        theirs = _measure(r, int(store.hget("baseline:starts", "started") or 0))
        theirs["failed"] = int(store.hget("baseline:starts", "failed") or 0)

    def rate(m: dict[str, Any]) -> str:
        return f"{m['rate']:.2f}/s ({m['rate'] / QUOTA_TPS:.0%} of {QUOTA_TPS:g})"

    note = f"{count} starts, {WORKERS} worker processes, emulator at {QUOTA_TPS:g} TPS"
    gave_up = f"; the baseline gave up on {theirs['failed']} starts" if theirs["failed"] else ""
    return [
        ("throttles received (start quota)", str(ours["throttled"]), str(theirs["throttled"]),
         "-", note + "; baseline: Celery rate_limit 3/s per worker" + gave_up),
        ("start rate while the backlog lasts", rate(ours), rate(theirs),
         f"{ours['rate'] / theirs['rate']:.2f}", "from the emulator's job creation times"),
    ]  # fmt: skip


def _measure(r: Rig, count: int) -> dict[str, Any]:
    wait_until(lambda: r.emulator.stats()["jobs"]["total"] >= count, 600, interval=0.5)
    starts = sorted(job["created_at"] for job in r.emulator.jobs())
    return {
        "throttled": r.emulator.stats()["throttled"],
        "rate": (len(starts) - 1) / (starts[-1] - starts[0]),
    }
