"""Agno's synchronous runs beside AgentCore jobs on the same workers: does a stream of
minute-long Agno calls delay AgentCore's admission?

Two runs of the slots scenario's AgentCore jobs (12 quick, 40 full) on 2 workers x 2
processes: alone, and with Agno requests arriving all along, each call holding a worker
process for 60 emulated seconds. The Agno target's two slots bound the processes its calls
hold. Goal: AgentCore slot utilisation with Agno traffic >= 98%.
"""

from __future__ import annotations

import random
from typing import Any

from api_contracts.examples import sample_agno_request
from evalq_emulators.backend_fixtures import AGNO_TEST_KEY
from tests.bench.harness import Rig, Row, rig
from tests.bench.slots import QUOTA, SCALE, _request, scaled_settings, slot_figures

AGNO_SECONDS = 60.0  # emulated seconds each Agno call holds a worker process


def mixed(quick: bool) -> list[Row]:
    count = 12 if quick else 40
    rng = random.Random(21)
    durations = [round(rng.uniform(120, 300)) for _ in range(count)]
    options = ("--time-scale", f"{SCALE:g}", "--max-active", str(QUOTA))
    with rig(*options, EVALQ_MAX_ACTIVE_JOBS=str(QUOTA), **scaled_settings(SCALE)) as r:
        agno = r.start_emulator("--service", "agno", "--time-scale", f"{SCALE:g}",
                                "--security-key", AGNO_TEST_KEY)  # fmt: skip
        r.env.update(EVALQ_AGNO_BASE_URL=agno.url, EVALQ_AGNO_SECURITY_KEY=AGNO_TEST_KEY)
        r.start_workers(["w1", "w2"], concurrency=2)
        r.start_beat()
        alone = _run(r, durations, "alone", agno_calls=0)
        r.emulator.post("/_emulator/reset", {})
        agno_calls = count * 2
        together = _run(r, durations, "mixed", agno_calls=agno_calls)
        agno_stats = agno.stats()
    a, b = together["slots"].utilisation, alone["slots"].utilisation
    setup = (f"{count} AgentCore jobs of 120-300 emulated s, quota {QUOTA}; {agno_calls} "
             f"Agno calls of {AGNO_SECONDS:g} emulated s each (2 slots); 2 workers x 2 "
             f"processes; time scale {SCALE:g}x")  # fmt: skip
    return [
        ("mixed: AgentCore slot utilisation, Agno calls running",
         f"{a:.2%}", f"{b:.2%} AgentCore alone", f"{a / b:.2f}",
         f"goal >= 98%; {setup}; Agno runs made {agno_stats['jobs']['total']}"),
    ]  # fmt: skip


def _run(r: Rig, durations: list[int], prefix: str, *, agno_calls: int) -> dict[str, Any]:
    producer = r.producer()
    for i in range(agno_calls):
        request = sample_agno_request(f"{prefix}-agno-{i:04d}", "agno-team")
        request["evaluation"]["input"] = f"emulator:duration={AGNO_SECONDS:g} question {i}"
        producer.submit(request)
    for i, duration in enumerate(durations):
        producer.submit(_request(i, duration, prefix=prefix))
    timeout = 120 + 3 * sum(durations) / SCALE / QUOTA + agno_calls * AGNO_SECONDS / SCALE
    outcomes = producer.collect(len(durations) + agno_calls, timeout=timeout)
    ours = {o["batch_evaluation_id"] for o in outcomes if o["backend"] == "agentcore"}
    jobs = [j for j in r.emulator.jobs() if j["batchEvaluationId"] in ours]
    return {"slots": slot_figures([(j["created_at"], j["ended_at"]) for j in jobs], QUOTA)}
