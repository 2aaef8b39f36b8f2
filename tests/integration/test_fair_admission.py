"""Fair admission end to end: one producer's burst does not keep another's single request
waiting; it takes the first slot that frees (real worker processes, emulator over HTTP)."""

from __future__ import annotations

from api_contracts.examples import sample_request
from worker.backends.agentcore import client_token


def _request(request_id: str, producer: str, duration: int) -> dict:
    request = sample_request(request_id=request_id, producer=producer)
    request["evaluation"]["tags"] = {
        "emulator:sessions": "2",
        "emulator:duration": str(duration),
    }
    return request


def test_a_single_request_behind_a_burst_takes_the_first_free_slot(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator)
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()

    # Long enough (4 real s) that no slot frees before the single request is queued.
    for i in range(30):
        producer.submit(_request(f"burst-{i:02d}", "team-a", duration=160))
    producer.submit(_request("single", "team-b", duration=20))

    [outcome] = [o for o in producer.collect(6, timeout=120) if o["request_id"] == "single"]
    assert outcome["status"] == "COMPLETED"
    starts = [job["clientToken"] for job in sorted(emulator.jobs(), key=lambda j: j["created_at"])]
    # Five burst jobs filled the slots; the single request had the next one.
    assert starts.index(client_token("single")) == 5
