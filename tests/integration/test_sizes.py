"""Sizes before work (issue 20), on a real redis-server with real ``evalq worker`` and
``evalq exporter`` processes: an oversized message costs neither Redis nor the worker
more than its limit, no header is kept or logged whole, every dead letter keeps at most
the limit, and the exporter counts dead letters without reading them."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Queue

from api_contracts import ReasonCode
from api_contracts.examples import sample_request
from worker.dead_letters.sizes import cut_of
from worker.dead_letters.store import DeadLetterStore
from worker.keys import Keys

LIMIT = 256 * 1024  # the default EVALQ_MAX_PAYLOAD_BYTES
REQUESTS = "evals.requests"


def _valid(i: int) -> dict[str, Any]:
    request = sample_request(request_id=f"ok-{i:03d}", producer="sizes-suite")
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    return request


def _publish(url: str, body: bytes, headers: dict[str, Any] | None = None) -> None:
    """``body`` as a protocol-2 call of evals.submit, with extra ``headers``."""
    celery_headers = Celery("p").amqp.as_task_v2(str(uuid.uuid4()), "evals.submit").headers
    queue = Queue(REQUESTS, Exchange(REQUESTS, "direct"), REQUESTS)
    with Connection(url) as conn:
        conn.Producer().publish(
            body, exchange=queue.exchange, routing_key=REQUESTS, declare=[queue],
            content_type="application/json", content_encoding="utf-8",
            headers={**dict(celery_headers), **(headers or {})},
        )  # fmt: skip


def _call(request: Any) -> bytes:
    return json.dumps([[], {"request": request}, {}]).encode()


def _dead_letters(env: dict[str, str]) -> DeadLetterStore:
    client = redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)
    return DeadLetterStore(client, Keys(), max_entries=10_000, max_age=10**9)


def _wait_for(store: DeadLetterStore, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while store.count() < count and time.monotonic() < deadline:
        time.sleep(0.2)


def _stored_sizes(store: DeadLetterStore) -> list[int]:
    return [store.redis.strlen(Keys().dead_letter(d.dead_letter_id)) for d in store.find()]


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_an_80_mib_item_is_dead_lettered_unread_and_the_worker_serves_around_it(service, producer):
    """It held Redis for seconds inside the fetch, took the worker from 72 to 334 MB, and
    left a dead letter of 1 MiB."""
    env, worker = service.cluster.env, service.worker
    for i in range(2):
        producer.submit(_valid(i))
    big = _call({"request_id": "huge", "pad": "x" * (60 * 2**20)})  # 80 MiB in base64
    _publish(env["EVALQ_BROKER_URL"], big)
    for i in range(2, 4):
        producer.submit(_valid(i))

    outcomes = producer.collect(4, timeout=60)
    assert {o["request_id"] for o in outcomes} == {f"ok-{i:03d}" for i in range(4)}
    store = _dead_letters(env)
    _wait_for(store, 1)
    (letter,) = store.find()
    assert letter.reason == ReasonCode.payload_too_large
    assert "refused unread" in letter.error
    kept, total = cut_of(letter.request)
    assert total > 80 * 2**20  # the whole item, envelope and all
    assert kept < LIMIT
    assert max(_stored_sizes(store)) <= LIMIT
    assert worker.alive()
    # Never decoded: the worker's main process (fetch and guard) stayed small.
    assert _peak_mb(worker.pid) < 200


@pytest.mark.both_brokers
def test_large_headers_are_dead_lettered_and_never_kept_or_logged_whole(service, producer):
    """A 5 MiB header became a 10 MiB dead letter and a 5 MiB log line, or rode along
    with an accepted request. On Redis the fetch refuses such an item unread; a header
    over the cap that the fetch lets through is refused by the guard (RabbitMQ takes no
    header over its frame, 128 KiB)."""
    env, cluster = service.cluster.env, service.cluster
    sizes = [100 * 1024] + ([5 * 2**20] if service.broker.kind == "redis" else [])
    names = ["x-junk", "task", "kwargsrepr", "evalq_replay"]
    sent = [(name, size) for size in sizes for name in names]
    for n, (name, size) in enumerate(sent):
        _publish(env["EVALQ_BROKER_URL"], _call(_valid(100 + n)), headers={name: "h" * size})
        producer.submit(_valid(n))
    outcomes = producer.collect(len(sent), timeout=60)
    assert {o["request_id"] for o in outcomes} == {f"ok-{n:03d}" for n in range(len(sent))}

    store = _dead_letters(env)
    _wait_for(store, len(sent))
    letters = store.find()
    assert [d.reason.value for d in letters] == ["payload_too_large"] * len(sent)
    capped = [d for d in letters if "headers of 102" in d.error and "cap of 16384" in d.error]
    assert len(capped) == len(names)
    assert len([d for d in letters if "refused unread" in d.error]) == len(sent) - len(names)
    assert max(_stored_sizes(store)) <= LIMIT
    jobs = [Keys().job(f"ok-{100 + n:03d}") for n in range(len(sent))]
    assert store.redis.exists(*jobs) == 0  # nothing ran of them
    longest = max(len(line) for line in (cluster.logs / "w1.log").read_text().splitlines())
    assert longest < 10_000


def test_the_exporter_counts_many_large_dead_letters_without_reading_them(
    emulator_factory, cluster_factory
):
    """100 dead letters of 1 MiB took the exporter from 55 to 252 MiB (limit 256 Mi)."""
    cluster = cluster_factory(emulator_factory())
    url = cluster.start_exporter()
    store = _dead_letters(cluster.env)
    entries = 300
    for n in range(entries):
        body = f'[[], {{"request": {{"request_id": "big-{n}", "pad": "' + "y" * LIMIT + '"}}, {}]'
        store.record(reason=ReasonCode.payload_too_large, error="too large", request=body,
                     request_id=None, now=time.time() - 60 + n / 1000)  # fmt: skip
    assert min(_stored_sizes(store)) > LIMIT - 1024  # as large as an entry may be

    with urllib.request.urlopen(url, timeout=60) as response:
        text = response.read().decode()
    counted = [line for line in text.splitlines()
               if line.startswith("evalq_dead_letters{")]  # fmt: skip
    assert counted == [
        'evalq_dead_letters{backend="unknown",reason="payload_too_large",target="unknown"} '
        f"{float(entries)}"
    ]
    exporter = cluster.processes[-1]
    assert _peak_mb(exporter.pid) < 120
