"""Fair admission end to end: one producer's burst does not keep another's single request
waiting; it takes the first slot that frees (real worker processes, emulator over HTTP)."""

from __future__ import annotations

import time

import pytest
import redis

from api_contracts.examples import sample_request
from worker.backends.agentcore import client_token


def _request(request_id: str, producer: str, duration: int) -> dict:
    request = sample_request(request_id=request_id, producer=producer)
    request["evaluation"]["tags"] = {
        "emulator:sessions": "2",
        "emulator:duration": str(duration),
    }
    return request


# Admission lives in the job store: the broker makes no difference here.
@pytest.mark.parametrize("broker", ["redis"], indirect=True)
def test_a_single_request_behind_a_burst_takes_the_first_free_slot(service, producer):
    emulator, cluster = service.emulator, service.cluster

    # Burst jobs run 4 real seconds: the single request arrives while all slots are busy.
    for i in range(30):
        producer.submit(_request(f"burst-{i:02d}", "team-a", duration=160 + 4 * i))
    producer.submit(_request("single", "team-b", duration=20))

    store = redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"], decode_responses=True)
    deadline = time.monotonic() + 120
    while store.hget("evalq:job:single", "outcome_status") is None:
        assert time.monotonic() < deadline, "the single request never finished"
        time.sleep(0.1)
    assert store.hget("evalq:job:single", "outcome_status") == "COMPLETED"
    queued_at, admitted_at = map(float, store.hmget("evalq:job:single", "accepted_at",
                                                   "admitted_at"))  # fmt: skip
    burst = [store.hget(f"evalq:job:burst-{i:02d}", "admitted_at") for i in range(30)]
    admitted = [float(t) for t in burst if t]
    # Five burst requests held the slots; none was admitted between the single request's
    # arrival and its own admission: it had the first slot that freed.
    assert len(admitted) >= 5
    assert [t for t in admitted if queued_at <= t < admitted_at] == []
    assert client_token("single") in {job["clientToken"] for job in emulator.jobs()}
