"""Backlog scale: 100,000 (``backlog``) or a million (``backlog1m``) queued requests.
Worker RSS, Redis bytes per queued request, and the time to admit the next job with 1,000
and with that many requests waiting.

The backlog is filled straight through ``JobStore.register`` (the script ``evals.submit``
runs, without the broker hop) for speed; admission is measured through the real path:
a remote job ends, a worker sees it, frees the slot and admits the next request, whose
start reaches the emulator. Baseline: the same figures at a 1,000-request backlog."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

from api_contracts import EvaluationRequest
from evalq_emulators.processes import RedisServer
from tests.bench.harness import (
    Rig,
    Row,
    percentile,
    process_tree,
    pss_mb,
    rig,
    rss_mb,
    wait_until,
)
from tests.bench.requests import bench_request
from tests.bench.slots import QUOTA
from worker.backends.agentcore import client_token
from worker.jobs.store import JobStore
from worker.keys import Keys

SCALE = 30.0
#: Emulated seconds per job: slots turn over about once a second, below the 3 TPS start
#: quota, so hand-overs never wait for the rate limit.
DURATION = 150.0


def backlog(quick: bool) -> list[Row]:
    return _backlog(20_000 if quick else 100_000, 15 if quick else 40)


def backlog_million(quick: bool) -> list[Row]:
    """The same with a million queued (``--only backlog1m``; filling it takes minutes)."""
    return _backlog(200_000 if quick else 1_000_000, 15 if quick else 40, batch=2_000)


def _backlog(large: int, sample: int, batch: int = 1) -> list[Row]:
    settings = {"EVALQ_MAX_ACTIVE_JOBS": str(QUOTA), "EVALQ_POLL_INITIAL": "0.05",
                "EVALQ_POLL_MIN": "0.01", "EVALQ_POLL_END_MARGIN": "0.02",
                "EVALQ_TICK_INTERVAL": "0.05"}  # fmt: skip
    with rig("--time-scale", f"{SCALE:g}", "--max-active", str(QUOTA), **settings) as r:
        store = JobStore(r.store, Keys())
        _fill(store, 0, 1000)
        [worker] = r.start_workers(["w1"], concurrency=2)
        r.start_beat()
        small = _admissions(r, store, sample)
        small_memory = _memory(worker.pid)

        memory_before = int(r.store.info("memory")["used_memory"])
        queued_before = store.backlog_size("default")
        _fill(store, 1000, large, batch)
        queued = store.backlog_size("default")
        bytes_per_request = (int(r.store.info("memory")["used_memory"]) - memory_before) / (
            queued - queued_before
        )
        big = _admissions(r, store, sample)
        big_memory = _memory(worker.pid)
    ratio = percentile(big["latency"], 50) / percentile(small["latency"], 50)
    return [
        ("backlog: slot freed -> next start", _ms(big["latency"]), _ms(small["latency"]),
         f"{ratio:.2f} (p50)", f"{queued:,} vs ~1,000 queued; real path, real ms"),
        ("backlog: ADMIT script run time", _us(big["admit"]), _us(small["admit"]),
         f"{percentile(big['admit'], 95) / percentile(small['admit'], 95):.2f} (p95)",
         f"inside Redis (SLOWLOG), {len(big['admit'])} calls"),
        ("backlog: worker RSS (largest process)", f"{big_memory['rss']:.0f} MB",
         f"{small_memory['rss']:.0f} MB", f"{big_memory['rss'] / small_memory['rss']:.2f}",
         f"main + {big_memory['processes'] - 1} pool processes: {big_memory['pss']:.0f} MB "
         "together (PSS: shared pages counted once)"),
        ("backlog: Redis bytes per queued request", f"{bytes_per_request:,.0f} B", "-", "-",
         "INFO used_memory before/after filling"),
    ]  # fmt: skip


def _memory(pid: int) -> dict[str, float]:
    tree = process_tree(pid)
    return {"rss": max(rss_mb(p) for p in tree), "pss": sum(pss_mb(p) for p in tree),
            "processes": len(tree)}  # fmt: skip


def _fill(store: JobStore, start: int, stop: int, batch: int = 1) -> None:
    """Register requests ``queued-<start..stop>`` as intake does (its script); ``batch``
    of them per round trip, through threads sharing the connection pool."""
    template = EvaluationRequest.model_validate(bench_request(0, sessions=5, duration=DURATION))
    now = time.time()

    def register(i: int) -> None:
        request = template.model_copy(update={"request_id": f"queued-{i:07d}"})
        store.register(request, target="default", now=now, deadline_at=now + 86_400, retention=0.0)

    if batch <= 1:
        for i in range(start, stop):
            register(i)
        return
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(register, range(start, stop), chunksize=batch))


def _admissions(r: Rig, store: JobStore, sample: int) -> dict[str, Any]:
    """Let ``sample`` more slots turn over, then read how long each hand-over took (the
    evalq record's finish time to the emulator's next start) and how long the ADMIT
    script ran inside Redis (its SLOWLOG, which logs every call here)."""
    r.store.config_set("slowlog-log-slower-than", 0)
    r.store.config_set("slowlog-max-len", 100_000)
    r.store.slowlog_reset()
    seen = len(r.emulator.jobs())
    wait_until(lambda: len(r.emulator.jobs()) >= seen + sample, 300, interval=0.2)
    admit_sha = store.scripts["admit"].sha
    admit = [entry["duration"] / 1e6 for entry in r.store.slowlog_get(100_000)
             if admit_sha in str(entry["command"])]  # fmt: skip
    r.store.config_set("slowlog-log-slower-than", 10_000)
    jobs = r.emulator.jobs()
    starts = sorted(j["created_at"] for j in jobs)
    by_token = {client_token(rid): rid for rid in _queued_ids(len(starts) + QUOTA)}
    finished = sorted(
        f for f in (_finished_at(store, by_token.get(j["clientToken"])) for j in jobs) if f
    )
    # The k-th slot evalq freed went to the (QUOTA + k)-th start.
    latency = [starts[QUOTA + k] - end for k, end in enumerate(finished)
               if QUOTA + k < len(starts)][-sample:]  # fmt: skip
    return {"latency": latency, "admit": admit}


def _queued_ids(count: int) -> list[str]:
    return [f"queued-{i:07d}" for i in range(count)]


def _finished_at(store: JobStore, request_id: str | None) -> float | None:
    job = store.get(request_id) if request_id else None
    return job.finished_at if job else None


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1e3:.1f} ms, p95 {percentile(values, 95) * 1e3:.1f} ms"


def _us(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1e6:.0f} us, p95 {percentile(values, 95) * 1e6:.0f} us"


def record_size(quick: bool) -> list[Row]:
    """Redis bytes per queued request (``--only recordsize``): as Redis keeps a job record
    by default (a hash with a value over 64 bytes, the stored request, is a hash table),
    against ``hash-max-listpack-value 1024`` (the record packed in one listpack)."""
    count = 5_000 if quick else 20_000
    sizes = {value: _bytes_per_request(count, value) for value in (64, 1024)}
    return [
        ("Redis bytes per queued request, hash-max-listpack-value 1024",
         f"{sizes[1024]:,.0f} B", f"{sizes[64]:,.0f} B default (64)",
         f"{sizes[1024] / sizes[64]:.2f}", f"{count:,} requests registered; INFO used_memory"),
    ]  # fmt: skip


def _bytes_per_request(count: int, listpack_value: int) -> float:
    logs = Path(tempfile.mkdtemp(prefix="evalq-bench-"))
    server = RedisServer(directory=logs, log_path=logs / "redis.log").start()
    try:
        client = redis.Redis.from_url(f"{server.url}/1", decode_responses=True)
        client.config_set("hash-max-listpack-value", listpack_value)
        before = int(client.info("memory")["used_memory"])
        _fill(JobStore(client, Keys()), 0, count, batch=500)
        return (int(client.info("memory")["used_memory"]) - before) / count
    finally:
        server.stop()
