"""Benchmark scenarios. Each returns table rows: (scenario, evalq, baseline, ratio, notes)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from api_contracts.examples import sample_request
from tests.bench.backlog import backlog, backlog_million, record_size
from tests.bench.burst import burst
from tests.bench.delivery import delivery
from tests.bench.fairness import fairness
from tests.bench.harness import Row, rig, wait_until
from tests.bench.janitor import janitor
from tests.bench.mixed import mixed
from tests.bench.scale import scale
from tests.bench.sizes import sizes
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
    the reliable fetch against kombu's stock BRPOP.

    Three rounds, each on a fresh rig (no jobs left running from the round before): on
    two cores Redis and the worker's three processes share the CPU, and one round's ratio
    swings with whatever else the machine does; the median holds. Each batch is sent
    before the clock starts (``_intake_round``).
    Both paths are warmed first (50 messages each, untimed): each worker process's first
    request loads the producer policy, the Lua scripts and pydantic's validators, a fixed
    cost that the 300 messages of ``--quick`` would otherwise count as throughput."""
    count = 1000 if quick else 3000  # fewer than 1000 swing by +-0.5
    rounds = [_intake_round(count, with_stock_fetch=(i == 0)) for i in range(3)]
    stock_rate = rounds[0][0]
    noop_rates = [noop for _, noop, _ in rounds]
    submit_rates = [submit for _, _, submit in rounds]
    ratios = [submit / noop for _, noop, submit in rounds]
    submit, noop = statistics.median(submit_rates), statistics.median(noop_rates)
    setup = f"{count} messages, 1 worker x 2 processes"
    spread = ", ".join(f"{x:.2f}" for x in ratios)
    return [("intake (requests/s into the backlog)", f"{submit:.0f}/s",
             f"{noop:.0f}/s no-op task", f"{statistics.median(ratios):.2f}",
             f"{setup}; median of {len(rounds)} rounds ({spread})"),
            ("fetch: no-op tasks/s, reliable fetch", f"{noop_rates[0]:.0f}/s",
             f"{stock_rate:.0f}/s stock BRPOP", f"{noop_rates[0] / stock_rate:.2f}",
             setup)]  # fmt: skip


_WARM_UP = 50


#: Where a round's messages wait, unconsumed, until they are moved onto the requests
#: queue at once (``_released``).
_STAGING = "bench.staging"


def _intake_round(count: int, *, with_stock_fetch: bool) -> tuple[float, float, float]:
    """(no-op tasks/s with the stock fetch (0 unless asked), no-op tasks/s, requests/s).

    Each timed batch is sent first to a list no worker reads, then moved onto the requests
    queue in one step (``RENAME``): the clock times the worker alone, not the bench's own
    sending (which costs more for a request than for a ping, and shares the two cores)."""
    with rig("--time-scale", "1") as r:
        producer = r.producer()
        broker, store = r.broker, r.store

        def drained() -> bool:
            return broker.llen("evals.requests") == 0 and broker.hlen("unacked") == 0

        def requests_drained() -> bool:
            """No message of the requests queue waiting or in a worker's hands. (Not
            ``drained``: the jobs admitted meanwhile keep a poll of theirs in ``unacked``
            for up to a poll interval, a wait that is no part of intake.)"""
            if broker.llen("evals.requests"):
                return False
            records = (json.loads(record) for record in broker.hvals("unacked"))
            return all(routing_key != "evals.requests" for _, _, routing_key in records)

        def released(send: Callable[[str], None], n: int, done: Callable[[], bool]) -> float:
            """Messages per second from the moment ``n`` staged messages reach the requests
            queue to ``done``."""
            for _ in range(n):
                send(_STAGING)
            wait_until(lambda: broker.llen(_STAGING) == n, 60)
            start = time.perf_counter()
            broker.rename(_STAGING, "evals.requests")  # wakes a worker waiting on it
            wait_until(done, 300)
            return n / (time.perf_counter() - start)

        def ping(queue: str) -> None:
            producer.app.send_task("evals.ping", queue=queue)

        def noop_rate(n: int = count) -> float:
            return released(ping, n, drained)

        stock_rate = 0.0
        if with_stock_fetch:
            stock = r.start_worker("stock", concurrency=2, queues="evals.requests",
                                   EVALQ_BROKER_RELIABLE_FETCH="false")  # fmt: skip
            noop_rate(_WARM_UP)
            stock_rate = noop_rate()
            r.stop(stock)

        # On the requests queue alone, as a worker of the intake pool (KEDA on
        # evals.requests) runs: the steps of the jobs intake admits go to evals.control,
        # so polls of running jobs are no part of the figure, nor of the no-op's.
        r.start_worker("intake", concurrency=2, queues="evals.requests")
        noop_rate(_WARM_UP)
        reliable_rate = noop_rate()
        requests = iter([_request(i, producer=f"p{i % 7}") for i in range(count + _WARM_UP)])

        def submit(queue: str) -> None:
            request = next(requests)
            producer.app.send_task("evals.submit", kwargs={"request": request}, queue=queue)

        def registered(n: int) -> Callable[[], bool]:
            return lambda: store.zcard("evalq:jobs") >= n and requests_drained()

        released(submit, _WARM_UP, registered(_WARM_UP))
        submit_rate = released(submit, count, registered(count + _WARM_UP))
        return stock_rate, reliable_rate, submit_rate


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
    "sizes": sizes,
    "scale": scale,
    "burst": burst,
    "backlog1m": backlog_million,
    "recordsize": record_size,
}
