"""Requests the benchmarks send: sample requests whose emulated behaviour is set by tags."""

from __future__ import annotations

from typing import Any

from api_contracts.examples import sample_request


def bench_request(
    i: int,
    *,
    producer: str = "bench",
    sessions: int = 2,
    duration: float | None = None,
    prefix: str = "bench",
    **overrides: Any,
) -> dict[str, Any]:
    """Request ``{prefix}-{i}``: ``sessions`` sessions; ``duration`` emulated seconds of
    run time (else the emulator's own model: about 6 emulated s per session)."""
    request = sample_request(request_id=f"{prefix}-{i:06d}", producer=producer, **overrides)
    tags = {"emulator:sessions": str(sessions)}
    if duration is not None:
        tags["emulator:duration"] = f"{duration:g}"
    request["evaluation"]["tags"] = tags
    return request
