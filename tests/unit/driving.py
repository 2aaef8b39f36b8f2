"""Helpers that drive a job through lifecycle by hand, as the timer would."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from api_contracts.examples import sample_request
from worker.jobs.advance import advance
from worker.jobs.intake import accept


def submit(services, request_id="r1", producer="p", tags=None, **overrides):
    request = sample_request(request_id=request_id, producer=producer, **overrides)
    request["evaluation"]["tags"] = tags or {"emulator:sessions": "2"}
    return accept(services, request)


def run_until(services, request_id, state, clock, steps=50):
    """Advance the job as the timer would, until it reaches ``state``."""
    for _ in range(steps):
        job = services.store.get(request_id)
        if job.state == state:
            return job
        clock.advance(60)
        advance(services, request_id)
    raise AssertionError(f"{request_id} stuck in {services.store.get(request_id).state}")


def advance_until(clock, predicate, step=1.0, limit=3600.0):
    """Move the test's clock (the emulators' too) on by ``step`` until ``predicate``
    holds, at most ``limit`` seconds."""
    moved = 0.0
    while not predicate():
        assert moved < limit, f"still not so after {limit} s on the clock"
        clock.advance(step)
        moved += step


def faults(emulator: Any, body: dict[str, Any]) -> None:
    """Set the emulator's faults (``POST /_emulator/faults``)."""
    request = urllib.request.Request(
        emulator.url + "/_emulator/faults", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request).close()


def calls(emulator: Any) -> dict[str, int]:
    """The emulator's remote calls so far, by operation."""
    with urllib.request.urlopen(emulator.url + "/_emulator/stats") as response:
        return dict(json.loads(response.read())["calls"])
