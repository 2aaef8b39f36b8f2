"""A job store at its memory ceiling (``maxmemory`` with ``noeviction``): Redis refuses
every write that needs memory. Intake must refuse cleanly: the request goes back to the
broker, nothing of it is written (no record, no backlog entry, no dead letter), and it
goes through once memory is freed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from api_contracts.examples import sample_request
from evalq_emulators.processes import RedisServer

FILLER = "evalq:test-filler"  # under the key prefix, as any of evalq's keys would be


def _request(i: int) -> dict:
    request = sample_request(request_id=f"full-{i}", producer="team-a")
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    return request


def test_a_full_job_store_refuses_intake_cleanly_and_resumes_when_memory_frees(
    emulator_factory, cluster_factory, producer, tmp_path: Path
):
    store_server = RedisServer(
        directory=tmp_path,
        log_path=tmp_path / "store.log",
        extra_args=["--maxmemory-policy", "noeviction"],
    ).start()
    store = store_server.client(db=1, decode_responses=True)
    emulator = emulator_factory("--time-scale", "100")
    cluster = cluster_factory(emulator, EVALQ_REDIS_URL=f"{store_server.url}/1")
    try:
        cluster.start_worker("w1")
        cluster.start_beat()
        # Data, then a ceiling below what is used: every write that needs memory is refused.
        for n in range(16):
            store.set(f"{FILLER}:{n}", "x" * 64 * 1024)
        store.config_set("maxmemory", int(store.info("memory")["used_memory"]) - 256 * 1024)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            store.set(f"{FILLER}:probe", "x")
        for i in range(3):
            producer.submit(_request(i))
        log = cluster.logs / "w1.log"
        deadline = time.monotonic() + 30
        while log.read_text(errors="replace").count("job store full; request back on") < 6:
            assert time.monotonic() < deadline, "intake never met the full job store"
            time.sleep(0.2)

        written = [key for key in store.keys("*") if not key.startswith(FILLER)]
        assert not [key for key in written if "full-" in key or key.startswith("evalq:dead")]
        assert store.zcard("evalq:dead") == 0

        store.delete(*store.keys(f"{FILLER}:*"))
        outcomes = producer.collect(3, timeout=60)
    finally:
        store_server.stop()

    assert {o["request_id"] for o in outcomes} == {"full-0", "full-1", "full-2"}
    assert {o["status"] for o in outcomes} == {"COMPLETED"}
    assert emulator.stats()["jobs"]["total"] == 3
    refused = [line for line in log.read_text(errors="replace").splitlines() if "raised" in line]
    assert not [line for line in refused if "evals.submit[" in line]
