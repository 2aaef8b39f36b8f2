"""Fault injection for the JSON emulators, on the AgentCore emulator's ``FaultConfig``.

The same document configures both (``POST /_emulator/faults``): ``throttle``,
``server_error``, ``drop``, ``lost_response`` (serve, then drop the answer),
``latency_rate`` + ``latency_ms``, optionally ``operations`` (names of this service's
operations). ``errors`` (AgentCore exception names) has no meaning here and is refused.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..agentcore.config import FaultConfig, FaultConfigError
from ..agentcore.faults import FAULT_KINDS

__all__ = ["FAULT_KINDS", "Fault", "FaultPlan", "parse_faults"]


def parse_faults(doc: Any, operations: Sequence[str]) -> FaultConfig:
    """A validated ``FaultConfig`` whose ``operations`` are among ``operations``."""
    if not isinstance(doc, dict):
        raise FaultConfigError("fault config must be a JSON object")
    if doc.get("errors"):
        raise FaultConfigError("errors are AgentCore exception names; use server_error")
    chosen = doc.get("operations")
    config = FaultConfig.from_dict({k: v for k, v in doc.items() if k != "operations"})
    if chosen is not None:
        if not isinstance(chosen, list) or not all(isinstance(o, str) for o in chosen):
            raise FaultConfigError("operations must be a list of operation names")
        unknown = sorted(set(chosen) - set(operations))
        if unknown:
            raise FaultConfigError(f"unknown operations: {', '.join(unknown)}")
        config.operations = list(chosen)
    return config


@dataclass(frozen=True)
class Fault:
    """What to do to one call: wait, then drop it, answer an error, or serve it (and
    maybe lose the answer)."""

    delay_seconds: float = 0.0
    drop: bool = False
    lose_response: bool = False
    #: "throttle" or "server_error": answer that error instead of serving the call.
    error: str | None = None
    kinds: tuple[str, ...] = ()


class FaultPlan:
    """Rolls the configured probabilities with a seeded RNG; the caller holds the lock."""

    def __init__(self, config: FaultConfig, seed: int | None) -> None:
        self.config = config
        self._rng = random.Random(seed)

    def decide(self, operation: str) -> Fault:
        cfg = self.config
        if not cfg.applies_to(operation):
            return Fault()
        kinds: list[str] = []
        delay = 0.0
        if cfg.latency_rate and self._rng.random() < cfg.latency_rate:
            delay = cfg.latency_ms / 1000.0
            kinds.append("latency")
        if cfg.drop and self._rng.random() < cfg.drop:
            return Fault(delay, drop=True, kinds=(*kinds, "drop"))
        if cfg.server_error and self._rng.random() < cfg.server_error:
            return Fault(delay, error="server_error", kinds=(*kinds, "server_error"))
        if cfg.throttle and self._rng.random() < cfg.throttle:
            return Fault(delay, error="throttle", kinds=(*kinds, "throttle"))
        if cfg.lost_response and self._rng.random() < cfg.lost_response:
            return Fault(delay, lose_response=True, kinds=(*kinds, "lost_response"))
        return Fault(delay, kinds=tuple(kinds))
