"""Several targets from one queue: three emulator processes as three accounts of five
slots each, against one target alone, on the same workers.

Rows: each target's slot utilisation and the throughput of three targets against one's
(goal: 3x within 10%), throttles received, and the healthy targets' utilisation while
a third one throttles and fails half its calls. Time scale ``SCALE`` with every evalq
delay divided by it (as in the slots scenario); figures in emulated seconds.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from evalq_emulators.pytest_plugin import Emulator
from tests.bench.harness import Rig, Row, rig
from tests.bench.requests import bench_request
from tests.bench.slots import scaled_settings, slot_figures

SCALE = 10.0
QUOTA = 5
NAMES = ("alpha", "beta", "gamma")


def targets(quick: bool) -> list[Row]:
    per_target = 10 if quick else 24
    rng = random.Random(13)
    durations = [round(rng.uniform(120, 300)) for _ in range(per_target)]
    options = ("--time-scale", f"{SCALE:g}", "--max-active", str(QUOTA))
    with rig(*options, **scaled_settings(SCALE)) as r:
        emulators = {"alpha": r.emulator} | {n: r.start_emulator(*options) for n in NAMES[1:]}
        env = {"EVALQ_TARGETS_FILE": str(_targets_file(r.logs, emulators))}
        r.start_workers(["w1", "w2"], concurrency=2, **env)
        r.env.update(env)
        r.start_beat()

        alone = _run(r, {"alpha": emulators["alpha"]}, durations, "one")
        together = _run(r, emulators, durations, "three")
        faults = {"gamma": {"throttle": 0.3, "server_error": 0.2}}
        faulted = _run(r, emulators, durations, "faulted", faults)
    return _rows(alone, together, faulted, per_target)


def _targets_file(logs: Path, emulators: dict[str, Emulator]) -> Path:
    lines = ["targets:"]
    for name, emulator in emulators.items():
        lines += [f"  - name: {name}", "    region: us-east-1",
                  f"    endpoint_url: {emulator.url}", f"    max_active_jobs: {QUOTA}",
                  f"    match: {{service_names: [{name}-agent]}}"]  # fmt: skip
    path = logs / "targets.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(
    r: Rig,
    emulators: dict[str, Emulator],
    durations: list[int],
    run: str,
    faults: dict[str, dict[str, float]] | None = None,
) -> dict:
    for name, emulator in emulators.items():
        emulator.post("/_emulator/reset", {})
        if faults and name in faults:
            emulator.post("/_emulator/faults", faults[name])
    producer = r.producer()
    sent = 0
    for i, duration in enumerate(durations):
        for name in emulators:
            producer.submit(_request(f"{run}-{name}", i, name, duration))
            sent += 1
    timeout = 120 + 3 * sum(durations) / SCALE / QUOTA
    producer.collect(sent, timeout=timeout)
    figures = {}
    for name, emulator in emulators.items():
        jobs = [j for j in emulator.jobs() if j["ended_at"] is not None]
        spans = [(j["created_at"], j["ended_at"]) for j in jobs]
        stats = emulator.stats()
        figures[name] = {
            "slots": slot_figures(spans, QUOTA),
            "window": max(e for _, e in spans) - min(s for s, _ in spans),
            "jobs": len(jobs),
            "throttled": stats["throttled"],
            "injected": {k: v for k, v in stats.get("faults", {}).items() if v},
        }
    return figures


def _request(prefix: str, i: int, target: str, duration: float) -> dict[str, Any]:
    request = bench_request(i, sessions=max(1, round(duration / 6)), duration=duration,
                            prefix=prefix)  # fmt: skip
    request["evaluation"]["dataSourceConfig"] = {
        "cloudWatchLogs": {"serviceNames": [f"{target}-agent"], "logGroupNames": ["/aws/x"]}
    }
    return request


def _rows(alone: dict, together: dict, faulted: dict, per_target: int) -> list[Row]:
    def throughput(figures: dict) -> float:
        jobs = sum(f["jobs"] for f in figures.values())
        window = max(f["window"] for f in figures.values())
        return jobs / window

    single = alone["alpha"]["slots"].utilisation
    each = ", ".join(f"{n} {f['slots'].utilisation:.2%}" for n, f in together.items())
    healthy = ", ".join(f"{n} {faulted[n]['slots'].utilisation:.2%}" for n in NAMES[:2])
    ratio = throughput(together) / throughput(alone)
    throttled = sum(f["throttled"] for f in together.values())
    setup = (f"{per_target} jobs of 120-300 emulated s per target, quota {QUOTA} each, "
             f"time scale {SCALE:g}x (evalq delays / {SCALE:g})")  # fmt: skip
    gamma = faulted["gamma"]
    return [
        ("targets: slot utilisation, 3 x 5 slots", each, f"{single:.2%} one target alone",
         f"{min(f['slots'].utilisation for f in together.values()) / single:.2f} (min)",
         setup),
        ("targets: throughput, 3 targets vs 1", f"{throughput(together) * 3600:.0f} jobs/h",
         f"{throughput(alone) * 3600:.0f} jobs/h", f"{ratio:.2f}",
         "goal 3x within 10% (2.7-3.3); emulated hours"),
        ("targets: throttles received", str(throttled), "-", "-",
         "3 accounts, shared start/get/list rates per target"),
        ("targets: healthy targets while one fails", healthy,
         f"gamma {gamma['slots'].utilisation:.2%}", "-",
         f"gamma: 30% throttled, 20% 5xx (injected {gamma['injected']})"),
    ]  # fmt: skip
