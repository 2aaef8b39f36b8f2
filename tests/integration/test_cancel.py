"""``evals.cancel`` sent by name, as a producer does, to a real worker: a queued request
never starts, a running one is stopped, both end CANCELLED; cancelling again or after the
end changes nothing (the emulator counts the remote calls)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from api_contracts.examples import sample_request

pytestmark = pytest.mark.both_brokers


def _request(request_id: str, duration: str) -> dict[str, Any]:
    request = sample_request(request_id=request_id, producer="cancel-suite")
    request["evaluation"]["tags"] = {"emulator:duration": duration, "emulator:sessions": "1"}
    return request


def _cancel(producer: Any, request_id: str, reason: str) -> None:
    body = {"request_id": request_id, "producer": "cancel-suite", "reason": reason}
    producer.app.send_task("evals.cancel", kwargs={"request": body}, queue="evals.requests")


def test_cancel_a_running_and_a_queued_request(emulator_factory, cluster_factory, producer):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator, EVALQ_MAX_ACTIVE_JOBS="1")
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()
    producer.submit(_request("running-1", "100000"))  # takes the one slot, runs for long
    deadline = time.monotonic() + 30
    while not emulator.stats()["calls"].get("StartBatchEvaluation"):
        assert time.monotonic() < deadline, "running-1 never started"
        time.sleep(0.2)
    producer.submit(_request("queued-1", "10"))  # waits for the slot
    # Cancelled once it is in the backlog: two worker processes could otherwise take the
    # cancel before the submit, and a cancel of a request evalq does not hold is "unknown".
    store = redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"], decode_responses=True)
    deadline = time.monotonic() + 30
    while not store.keys("evalq:job:*queued-1"):
        assert time.monotonic() < deadline, "queued-1 never reached the backlog"
        time.sleep(0.1)

    _cancel(producer, "queued-1", "superseded")
    # Its outcome first: cancelled while running-1 still held the slot.
    (queued,) = producer.collect(1, timeout=60)
    _cancel(producer, "running-1", "release rolled back")
    (running,) = producer.collect(1, timeout=60, seen={"queued-1"})
    outcomes = {o["request_id"]: o for o in (queued, running)}

    assert outcomes["queued-1"]["status"] == "CANCELLED"
    assert outcomes["queued-1"]["batch_evaluation_id"] is None
    assert "no remote job was created" in outcomes["queued-1"]["error"]
    assert outcomes["running-1"]["status"] == "CANCELLED"
    assert outcomes["running-1"]["error"] == (
        "cancelled by its producer: release rolled back: stopped"
    )
    _cancel(producer, "running-1", "again")  # after the end: nothing happens
    time.sleep(1.0)
    assert producer.drain(settle=1.0) == []
    calls = emulator.stats()["calls"]
    assert (calls["StartBatchEvaluation"], calls["StopBatchEvaluation"]) == (1, 1)
