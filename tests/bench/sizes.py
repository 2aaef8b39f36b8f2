"""Sizes: what one oversized message and a full dead-letter store cost (issue 20).

* An 80 MiB item on ``evals.requests`` (a Celery message whose body is 60 MiB, base64 in
  kombu's envelope), sent by a real producer to a real ``evalq worker`` between valid
  requests: the worker's main process (which fetches and screens messages) RSS after it,
  its peak (VmHWM), and how long the fetch held Redis (SLOWLOG, every command logged for the
  while). Baseline: the same process before the item.
* ``evalq exporter`` scraping a store of 10,000 dead letters of the largest size an entry
  may have (1,000 with ``--quick``): its RSS and peak after the scrape. Baseline: the same
  exporter after a scrape of the empty store.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

import redis
from kombu import Connection, Exchange, Queue

from evalq_emulators.processes import ManagedProcess, evalq_command, free_port, wait_for_line
from tests.bench.harness import Rig, Row, rig, rss_mb, wait_until
from tests.bench.requests import bench_request
from worker.dead_letters.store import DeadLetterStore
from worker.keys import Keys

REQUESTS = "evals.requests"
#: 60 MiB of body make an 80 MiB item (kombu's Redis envelope holds the body as base64).
BODY_BYTES = 60 * 1024 * 1024
LIMIT = 256 * 1024  # EVALQ_MAX_PAYLOAD_BYTES's default


def sizes(quick: bool) -> list[Row]:
    with rig("--time-scale", "40") as r:
        fetch = _oversized_item(r)
        exporter = _exporter(r, 1000 if quick else 10_000)
    return [
        ("sizes: worker peak RSS, an 80 MiB item", f"{fetch['peak']:.0f} MB",
         f"{fetch['before']:.0f} MB before it", f"{fetch['peak'] / fetch['before']:.2f}",
         f"main process (fetch and guard), VmHWM; {fetch['after']:.0f} MB after it; dead "
         f"letter {fetch['reason']}, {fetch['letter_bytes']:,} B stored"),
        ("sizes: Redis busy with that fetch", f"{fetch['eval_ms']:.1f} ms",
         f"{fetch['push_ms']:.1f} ms the push", "-",
         "SLOWLOG: the longest EVAL (the fetch) against the producer's LPUSH of the item"),
        ("sizes: exporter peak RSS, full dead-letter store", f"{exporter['peak']:.0f} MB",
         f"{exporter['before']:.0f} MB empty store", f"{exporter['peak'] / exporter['before']:.2f}",
         f"VmHWM; {exporter['after']:.0f} MB after; {exporter['entries']:,} dead letters of "
         f"{exporter['entry_bytes']:,} B ({exporter['redis_mb']:,.0f} MB in Redis); "
         f"scrape {exporter['scrape_s']:.2f} s"),
    ]  # fmt: skip


# -- an oversized item through a real worker ---------------------------------------------------
def _oversized_item(r: Rig) -> dict[str, Any]:
    worker = r.start_worker("sizes", concurrency=2)
    producer = r.producer()
    jobs = r.store
    for i in range(3):
        producer.submit(bench_request(i, producer="sizes"))
    wait_until(lambda: jobs.zcard("evalq:jobs") >= 3, 60)
    time.sleep(1.0)  # settled: the first requests built their clients
    before = _peak_mb(worker.pid)

    broker = r.broker
    broker.config_set("slowlog-log-slower-than", 0)
    broker.config_set("slowlog-max-len", 100_000)
    broker.slowlog_reset()
    _publish_oversized(r.env["EVALQ_BROKER_URL"], producer.app)
    for i in range(3, 6):
        producer.submit(bench_request(i, producer="sizes"))
    wait_until(lambda: jobs.zcard("evalq:dead") >= 1 and jobs.zcard("evalq:jobs") >= 6, 120)
    slow = broker.slowlog_get(100_000)
    broker.config_set("slowlog-log-slower-than", 10_000)
    time.sleep(1.0)

    (entry_id,) = jobs.zrange("evalq:dead", 0, -1)
    letter = json.loads(jobs.get(f"evalq:dead:{entry_id}"))
    return {
        "before": before,
        "after": rss_mb(worker.pid),
        "peak": _peak_mb(worker.pid),
        "reason": letter["reason"],
        "letter_bytes": jobs.strlen(f"evalq:dead:{entry_id}"),
        "eval_ms": _longest_ms(slow, "EVAL"),
        "push_ms": _longest_ms(slow, "LPUSH"),
    }


def _publish_oversized(url: str, app: Any) -> None:
    """A Celery call of evals.submit whose body is BODY_BYTES long, published as any
    producer publishes (kombu's envelope, body base64-encoded)."""
    head, tail = b'[[], {"request": {"request_id": "huge", "pad": "', b'"}}, {}]'
    body = head + b"x" * (BODY_BYTES - len(head) - len(tail)) + tail
    headers = dict(app.amqp.as_task_v2(str(uuid.uuid4()), "evals.submit").headers)
    queue = Queue(REQUESTS, Exchange(REQUESTS, "direct"), REQUESTS)
    with Connection(url) as conn:
        conn.Producer().publish(
            body, exchange=queue.exchange, routing_key=REQUESTS, declare=[queue],
            content_type="application/json", content_encoding="utf-8", headers=headers,
        )  # fmt: skip


def _longest_ms(entries: list[dict[str, Any]], command: str) -> float:
    def name(entry: dict[str, Any]) -> str:
        words = entry["command"]
        first = words.split(b" ", 1)[0] if isinstance(words, bytes) else str(words).split(" ")[0]
        return (first.decode() if isinstance(first, bytes) else first).upper()

    durations = [e["duration"] for e in entries if name(e) == command]
    return max(durations, default=0) / 1000


# -- the exporter over a full store ------------------------------------------------------------
def _exporter(r: Rig, entries: int) -> dict[str, Any]:
    store = r.store
    store.flushdb()
    port = free_port()
    log = r.logs / "exporter.log"
    argv = evalq_command("exporter", "--host", "127.0.0.1", "--port", str(port))
    proc = ManagedProcess("exporter", argv, env=r.env, log_path=log).start()
    r.processes.append(proc)
    wait_for_line(log, "exporter listening on", 30, proc)
    url = f"http://127.0.0.1:{port}/metrics"
    _scrape(url)
    before = _peak_mb(proc.pid)

    _fill(store, entries)
    started = time.perf_counter()
    text = _scrape(url)
    scrape_s = time.perf_counter() - started
    assert f" {float(entries)}" in text, "the gauge counts every entry"
    _scrape(url)  # a second scrape: what a steady exporter holds
    documents = store.scan_iter("evalq:dead:*", count=1000, _type="string")
    sizes = [store.strlen(key) for key in documents]
    return {
        "before": before,
        "after": rss_mb(proc.pid),
        "peak": _peak_mb(proc.pid),
        "entries": entries,
        "entry_bytes": max(sizes),
        "redis_mb": int(store.info("memory")["used_memory"]) / 2**20,
        "scrape_s": scrape_s,
    }


def _fill(client: redis.Redis, entries: int) -> None:
    """Dead letters whose raw bodies are as large as a message may be, each recorded as
    the guard records one (``DeadLetterStore.record``)."""
    from api_contracts import ReasonCode

    dead_letters = DeadLetterStore(client, Keys(), max_entries=entries, max_age=10**9)
    now = time.time() - 60
    for i in range(entries):
        body = f'[[], {{"request": {{"request_id": "big-{i:06d}", "pad": "'
        body += "y" * (LIMIT - len(body) - 8) + '"}}, {}]'
        dead_letters.record(
            reason=ReasonCode.payload_too_large,
            error=f"message body of {LIMIT + 1} bytes is over the limit of {LIMIT} bytes",
            request=body,
            request_id=None,
            now=now + i / 1000,
            task_name="evals.submit",
        )


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=600) as response:
        return str(response.read().decode())


def _peak_mb(pid: int) -> float:
    """Highest resident memory the process has had (MB, /proc's VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
