"""A release queues a whole regression suite at once: the time to drain a burst of
requests from ``evals.requests`` into the backlog with 1, 2 and 4 worker processes,
against the time the same processes take to drain as many no-op tasks (``evals.ping``:
the broker's and Celery's own cost) from the same queue."""

from __future__ import annotations

import time

from tests.bench.harness import Row, rig, wait_until
from tests.bench.requests import bench_request

PROCESSES = (1, 2, 4)


def burst(quick: bool) -> list[Row]:
    count = 2_000 if quick else 10_000
    rows: list[Row] = []
    for processes in PROCESSES:
        noop, intake = _drain(count, processes)
        rows.append((
            f"burst of {count:,}: drain into the backlog, {processes} process(es)",
            f"{intake:.1f} s ({count / intake:.0f}/s)", f"{noop:.1f} s no-op tasks",
            f"{noop / intake:.2f}", "one worker with -c N; the queue filled first",
        ))  # fmt: skip
    return rows


def _drain(count: int, processes: int) -> tuple[float, float]:
    """(seconds to drain ``count`` no-op tasks, seconds to drain ``count`` requests)."""
    with rig("--time-scale", "1") as r:
        producer = r.producer()
        for _ in range(count):
            producer.app.send_task("evals.ping", queue="evals.requests")
        worker = r.start_worker("noop", concurrency=processes)
        started = time.perf_counter()
        wait_until(lambda: r.broker.llen("evals.requests") == 0 and not r.broker.hlen("unacked"),
                   600, interval=0.05)  # fmt: skip
        noop = time.perf_counter() - started
        r.stop(worker)
        for i in range(count):
            # Many producers (fair admission's turns), deadlines far off: all stay queued.
            producer.submit(bench_request(i, producer=f"p{i % 20}", prefix="burst"))
        r.start_worker("intake", concurrency=processes)
        started = time.perf_counter()
        wait_until(lambda: r.store.zcard("evalq:jobs") >= count, 600, interval=0.05)
        return noop, time.perf_counter() - started
