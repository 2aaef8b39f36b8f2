"""Benchmark scenarios. Each returns table rows: (scenario, evalq, baseline, ratio, notes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from api_contracts.examples import sample_request
from tests.bench.backlog import backlog
from tests.bench.delivery import delivery
from tests.bench.fairness import fairness
from tests.bench.harness import Row, rig, wait_until
from tests.bench.janitor import janitor
from tests.bench.mixed import mixed
from tests.bench.slots import slots
from tests.bench.targets import targets
from tests.bench.throttling import throttling


def _request(i: int, *, producer: str = "bench", sessions: int = 2) -> dict[str, Any]:
    request = sample_request(request_id=f"bench-{i:06d}", producer=producer)
    request["evaluation"]["tags"] = {"emulator:sessions": str(sessions)}
    return request


def intake(quick: bool) -> list[Row]:
    """Requests/s that evals.submit accepts into the durable backlog, against a no-op
    Celery task on the same broker and the same worker; and the no-op task's rate with
    the reliable fetch against kombu's stock BRPOP."""
    count = 300 if quick else 3000
    with rig("--time-scale", "1") as r:
        producer = r.producer()
        broker, store = r.broker, r.store

        def drained() -> bool:
            return broker.llen("evals.requests") == 0 and broker.hlen("unacked") == 0

        def noop_rate() -> float:
            start = time.perf_counter()
            for _ in range(count):
                producer.app.send_task("evals.ping", queue="evals.requests")
            wait_until(drained, 300)
            return count / (time.perf_counter() - start)

        stock = r.start_worker("stock", concurrency=2, EVALQ_BROKER_RELIABLE_FETCH="false")
        stock_rate = noop_rate()
        r.stop(stock)

        r.start_worker("intake", concurrency=2)
        reliable_rate = noop_rate()
        requests = [_request(i, producer=f"p{i % 7}") for i in range(count)]
        start = time.perf_counter()
        for request in requests:
            producer.submit(request)
        wait_until(lambda: store.zcard("evalq:jobs") >= count and drained(), 300)
        submit_rate = count / (time.perf_counter() - start)
    setup = f"{count} messages, 1 worker x 2 processes"
    return [("intake (requests/s into the backlog)", f"{submit_rate:.0f}/s",
             f"{reliable_rate:.0f}/s no-op task", f"{submit_rate / reliable_rate:.2f}", setup),
            ("fetch: no-op tasks/s, reliable fetch", f"{reliable_rate:.0f}/s",
             f"{stock_rate:.0f}/s stock BRPOP", f"{reliable_rate / stock_rate:.2f}",
             setup)]  # fmt: skip


ALL: dict[str, Callable[..., list[Row]]] = {
    "intake": intake,
    "slots": slots,
    "backlog": backlog,
    "throttling": throttling,
    "fairness": fairness,
    "janitor": janitor,
    "delivery": delivery,
    "targets": targets,
    "mixed": mixed,
}
