"""Many targets on one deployment: one beat and one worker of two processes (two cores)
serving N accounts, each five slots, against one emulator process that keeps every
account apart (``/accounts/<id>``: its own jobs, quota and rates).

Rows: each target's slot utilisation (worst and median; goal >= 98%), against one target
alone on the same parts; worker + beat CPU per target per tick, idle and with five jobs
running per target; List calls per target per tick, idle (goal 0) and busy (goal <= 1);
Get calls per job (goal <= 0.05). Jobs run ``DURATION`` emulated seconds at time scale
``SCALE``; evalq's delays that time polls and retries are scaled with them, its tick
(half a real second) and recheck are not, which makes the idle gaps ``SCALE`` times their
true weight and evalq's work per real second up to ``SCALE`` times what it would be: the
figures are conservative.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bench.harness import (
    Rig,
    Row,
    percentile,
    process_tree,
    production_settings,
    rig,
    wait_until,
)
from tests.bench.requests import bench_request
from tests.bench.slots import scaled_settings, slot_figures

SCALE = 5.0
QUOTA = 5
#: Emulated seconds each job runs (SESSIONS sessions); GENERATIONS jobs run one after
#: another in each slot.
DURATION = 600.0
SESSIONS = 60
GENERATIONS = 2
#: evalq's settings here: the production lease and visibility timeout (the tests' 5 s and
#: 10 s re-sent every step that waited longer on the queue, and the copies swamped it),
#: the delays that time polls and retries scaled with the jobs, a half-second tick, and
#: the production recheck of watched jobs (a safety net: the listing sees their ends).
SETTINGS = {
    **production_settings("lease_seconds", "visibility_timeout", "restore_interval",
                          "watch_recheck_seconds"),
    **{name: value for name, value in scaled_settings(SCALE).items()
       if name != "EVALQ_WATCH_RECHECK_SECONDS"},
    "EVALQ_TICK_INTERVAL": "0.5",
}  # fmt: skip
#: Seconds of idle time over which the idle costs are measured.
IDLE_SECONDS = 20.0


def scale(quick: bool) -> list[Row]:
    count = 20 if quick else 200
    options = ("--time-scale", f"{SCALE:g}", "--max-active", str(QUOTA))
    with rig(*options, **SETTINGS) as r:
        one = _run(r, 1, "one")
    with rig(*options, **SETTINGS) as r:
        many = _run(r, count, "many")
    return _rows(one, many, count)


def _run(r: Rig, count: int, prefix: str) -> dict[str, Any]:
    names = [f"{prefix}{i:03d}" for i in range(count)]
    env = {"EVALQ_TARGETS_FILE": str(_targets_file(r.logs, r.emulator.url, names))}
    r.env.update(env)
    workers = r.start_workers([f"{prefix}-w"], concurrency=2)
    beat = r.start_beat()
    pids = process_tree(workers[0].pid) + process_tree(beat.pid)

    # Idle: every target configured, nothing to do.
    idle = _measure(r, names, pids, IDLE_SECONDS)
    # Busy: GENERATIONS jobs per slot of every target, sent at once.
    producer = r.producer()
    for n, name in enumerate(names):
        for j in range(QUOTA * GENERATIONS):
            producer.submit(_request(name, n * 1000 + j))
    total = count * QUOTA * GENERATIONS
    wait_until(lambda: _started(r, names) >= count * QUOTA, 300, interval=2.0)
    busy = _measure(r, names, pids, DURATION / SCALE * 0.8)
    outcomes = producer.collect(total, timeout=60 + 2 * GENERATIONS * DURATION / SCALE)
    assert len(outcomes) == total, f"{len(outcomes)} of {total} outcomes"
    utilisation = [_utilisation(r, name) for name in names]
    gets = sum(_stats(r, name)["calls"].get("GetBatchEvaluation", 0) for name in names)
    return {"idle": idle, "busy": busy, "utilisation": utilisation, "gets": gets / total}


def _targets_file(logs: Path, url: str, names: list[str]) -> Path:
    lines = ["targets:"]
    for name in names:
        lines += [f"  - name: {name}", "    region: us-east-1",
                  f"    endpoint_url: {url}/accounts/{name}", f"    max_active_jobs: {QUOTA}",
                  f"    match: {{service_names: [{name}-agent]}}"]  # fmt: skip
    path = logs / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _request(name: str, i: int) -> dict[str, Any]:
    request = bench_request(i, prefix=name, duration=DURATION, sessions=SESSIONS)
    request["evaluation"]["dataSourceConfig"] = {
        "cloudWatchLogs": {"serviceNames": [f"{name}-agent"], "logGroupNames": ["/aws/x"]}
    }
    return request


def _stats(r: Rig, name: str) -> dict[str, Any]:
    return dict(httpx.get(f"{r.emulator.url}/accounts/{name}/_emulator/stats").json())


def _started(r: Rig, names: list[str]) -> int:
    return sum(_stats(r, name)["calls"].get("StartBatchEvaluation", 0) for name in names)


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes so far (seconds)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / 100.0


def _measure(r: Rig, names: list[str], pids: list[int], seconds: float) -> dict[str, float]:
    """Over ``seconds``: CPU of worker and beat per target per tick, List calls per target
    per tick."""
    lists_before = sum(_stats(r, n)["calls"].get("ListBatchEvaluations", 0) for n in names)
    redis_before = _redis_cpu_seconds(r)
    cpu_before, started = _cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    cpu, elapsed = _cpu_seconds(pids) - cpu_before, time.monotonic() - started
    redis_cpu = _redis_cpu_seconds(r) - redis_before
    lists = sum(_stats(r, n)["calls"].get("ListBatchEvaluations", 0) for n in names)
    ticks = elapsed / float(r.env["EVALQ_TICK_INTERVAL"])
    return {
        "cpu_ms": 1000 * cpu / ticks / len(names),
        "lists": (lists - lists_before) / ticks / len(names),
        "cpu_share": cpu / elapsed / 2,  # of the machine's two cores
        "redis_ms": 1000 * redis_cpu / ticks / len(names),
        "redis_share": redis_cpu / elapsed,  # of the one core Redis's main thread uses
    }


def _redis_cpu_seconds(r: Rig) -> float:
    """CPU the redis-server (broker and job store) used so far (seconds)."""
    info = r.store.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _utilisation(r: Rig, name: str) -> float:
    jobs = httpx.get(f"{r.emulator.url}/accounts/{name}/_emulator/jobs").json()
    return slot_figures([(j["created_at"], j["ended_at"]) for j in jobs], QUOTA).utilisation


def _rows(one: dict[str, Any], many: dict[str, Any], count: int) -> list[Row]:
    u1, un = one["utilisation"][0], many["utilisation"]
    worst, median = min(un), statistics.median(un)
    served = sum(u >= 0.98 for u in un)
    setup = (f"one beat + one worker of 2 processes, one emulator process; {QUOTA} slots "
             f"per target, jobs of {DURATION:g} emulated s at {SCALE:g}x, tick 0.5 s")  # fmt: skip
    return [
        (f"{count} targets: slot utilisation, worst (median)", f"{worst:.2%} ({median:.2%})",
         f"{u1:.2%} one target", f"{worst / u1:.2f}",
         f"{served} of {count} targets >= 98%; p5 {percentile(un, 5):.2%}; {setup}"),
        (f"{count} targets: worker + beat CPU per target per tick, idle",
         f"{many['idle']['cpu_ms']:.2f} ms", f"{one['idle']['cpu_ms']:.2f} ms one target",
         f"{many['idle']['cpu_ms'] / one['idle']['cpu_ms']:.2f}",
         f"{many['idle']['cpu_share']:.1%} of two cores in all"),
        (f"{count} targets: worker + beat CPU per target per tick, 5 jobs running each",
         f"{many['busy']['cpu_ms']:.2f} ms", f"{one['busy']['cpu_ms']:.2f} ms one target",
         f"{many['busy']['cpu_ms'] / one['busy']['cpu_ms']:.2f}",
         f"{many['busy']['cpu_share']:.1%} of two cores in all"),
        (f"{count} targets: Redis CPU per target per tick, idle / 5 jobs running",
         f"{many['idle']['redis_ms']:.3f} / {many['busy']['redis_ms']:.3f} ms",
         f"{one['idle']['redis_ms']:.3f} / {one['busy']['redis_ms']:.3f} ms one target", "-",
         f"{many['idle']['redis_share']:.1%} / {many['busy']['redis_share']:.1%} of one "
         "core in all (broker and job store on one redis-server)"),
        (f"{count} targets: List calls per target per tick, idle / busy",
         f"{many['idle']['lists']:.2f} / {many['busy']['lists']:.2f}",
         f"{one['idle']['lists']:.2f} / {one['busy']['lists']:.2f} one target", "-",
         "goal: 0 idle, <= 1 while jobs run"),
        (f"{count} targets: Get calls per job", f"{many['gets']:.3f}",
         f"{one['gets']:.3f} one target", "-", "goal <= 0.05 (no insights asked)"),
    ]  # fmt: skip
