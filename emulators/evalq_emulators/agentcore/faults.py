"""Fault injection: decides, per API call, whether to delay, drop or fail it."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .config import FaultConfig, FaultConfigError
from .errors import ApiError, throttled
from .harness import StreamFault
from .wire import error_names

# Keys of the `faults` counters in /_emulator/stats.
FAULT_KINDS = (
    "throttle",
    "server_error",
    "drop",
    "lost_response",
    "latency",
    "errors",
    "stream_break",
    "stream_errors",
    "update_failed",
)


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one call: sleep first, then drop it, fail it, or serve it."""

    delay_seconds: float = 0.0
    drop: bool = False
    #: Serve the call, then drop the connection instead of answering.
    lose_response: bool = False
    error: ApiError | None = None
    # Which counters to bump (subset of FAULT_KINDS).
    kinds: tuple[str, ...] = ()


NO_FAULT = FaultDecision()


def check_fault_config(config: FaultConfig) -> None:
    """Reject error names the service does not model (boto3 could not raise them)."""
    unknown = sorted(set(config.errors) - error_names())
    if unknown:
        raise FaultConfigError(f"unknown error types: {', '.join(unknown)}")


class FaultInjector:
    """Rolls the configured probabilities with a seeded RNG; the caller holds the lock."""

    def __init__(self, config: FaultConfig, seed: int | None) -> None:
        check_fault_config(config)
        self.config = config
        self._rng = random.Random(seed)

    def decide(self, operation: str) -> FaultDecision:
        cfg = self.config
        if not cfg.applies_to(operation):
            return NO_FAULT
        kinds: list[str] = []
        delay = 0.0
        # Latency combines with any other outcome, like a slow network would.
        if cfg.latency_rate and self._rng.random() < cfg.latency_rate:
            delay = cfg.latency_ms / 1000.0
            kinds.append("latency")
        if cfg.drop and self._rng.random() < cfg.drop:
            return FaultDecision(delay, drop=True, kinds=(*kinds, "drop"))
        if cfg.server_error and self._rng.random() < cfg.server_error:
            err = ApiError("InternalServerException", "Injected internal server error")
            return FaultDecision(delay, error=err, kinds=(*kinds, "server_error"))
        for name, rate in cfg.errors.items():
            if rate and self._rng.random() < rate:
                err = ApiError(name, f"Injected {name}")
                if name == "ValidationException":
                    err.fields.update(reason="FieldValidationFailed", fieldList=[])
                return FaultDecision(delay, error=err, kinds=(*kinds, "errors"))
        if cfg.throttle and self._rng.random() < cfg.throttle:
            return FaultDecision(delay, error=throttled(operation), kinds=(*kinds, "throttle"))
        if cfg.lost_response and self._rng.random() < cfg.lost_response:
            return FaultDecision(delay, lose_response=True, kinds=(*kinds, "lost_response"))
        return FaultDecision(delay, kinds=tuple(kinds))

    def decide_stream(self) -> tuple[StreamFault, tuple[str, ...]]:
        """Whether an InvokeHarness stream is cut or ends in an in-stream error midway."""
        cfg = self.config
        if not cfg.applies_to("InvokeHarness"):
            return StreamFault(), ()
        for name, rate in cfg.stream_errors.items():
            if rate and self._rng.random() < rate:
                return StreamFault(error=name), ("stream_errors",)
        if cfg.stream_break and self._rng.random() < cfg.stream_break:
            return StreamFault(cut=True), ("stream_break",)
        return StreamFault(), ()

    def decide_update_failure(self) -> bool:
        """Whether an accepted UpdateEvaluator ends UPDATE_FAILED."""
        cfg = self.config
        if not cfg.applies_to("UpdateEvaluator") or not cfg.update_failed:
            return False
        return self._rng.random() < cfg.update_failed
