"""Fault injection, the same for every emulator: one configuration document
(``POST /_emulator/faults``, or the ``--fault-*`` options at start-up) and one plan that
decides, per API call, whether to delay, drop or fail it.

Every service reads the same document: ``throttle``, ``server_error``, ``drop``,
``lost_response`` (serve, then drop the answer), ``latency_rate`` + ``latency_ms``,
optionally ``operations`` (names of that service's operations). ``errors`` (modeled
exception name -> rate) only where the service models exceptions (AgentCore); the others
refuse it. ``stream_break``, ``stream_errors`` (InvokeHarness) and ``update_failed``
(UpdateEvaluator) concern AgentCore's operations.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

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

#: The modeled errors InvokeHarness can send inside its event stream (stream member names).
STREAM_ERRORS: tuple[str, ...] = (
    "internalServerException",
    "validationException",
    "runtimeClientError",
)


class FaultConfigError(ValueError):
    """A fault configuration document that cannot be applied."""


def _rate(d: dict[str, Any], key: str) -> float:
    value = d.get(key, 0.0)
    # bool is an int subclass; reject it so `true` is not silently read as 100%.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultConfigError(f"{key} must be a number")
    if not 0.0 <= float(value) <= 1.0:
        raise FaultConfigError(f"{key} must be within [0, 1]")
    return float(value)


@dataclass
class FaultConfig:
    """Probabilities (0..1) of each fault, rolled independently per API call."""

    throttle: float = 0.0
    server_error: float = 0.0
    drop: float = 0.0
    # The call is served (a Start creates its job) but the answer never arrives: what
    # clientToken idempotency exists for.
    lost_response: float = 0.0
    latency_rate: float = 0.0
    latency_ms: int = 0
    errors: dict[str, float] = field(default_factory=dict)
    # None means every operation; otherwise only the named ones are hit.
    operations: list[str] | None = None
    #: InvokeHarness: the connection is cut midway through the event stream.
    stream_break: float = 0.0
    #: InvokeHarness: a modeled in-stream error (STREAM_ERRORS name -> rate) midway.
    stream_errors: dict[str, float] = field(default_factory=dict)
    #: UpdateEvaluator: the update is accepted (202) and ends UPDATE_FAILED.
    update_failed: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaultConfig:
        """Build from the JSON document of `POST /_emulator/faults` (all keys optional);
        :func:`parse_faults` also checks the names against one service."""
        if not isinstance(d, dict):
            raise FaultConfigError("fault config must be a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FaultConfigError(f"unknown fault keys: {', '.join(unknown)}")
        latency_ms = d.get("latency_ms", 0)
        numeric = isinstance(latency_ms, int | float) and not isinstance(latency_ms, bool)
        if not numeric or latency_ms < 0:
            raise FaultConfigError("latency_ms must be a non-negative number")
        errors_raw = d.get("errors") or {}
        if not isinstance(errors_raw, dict):
            raise FaultConfigError("errors must be an object of error name -> rate")
        errors = {str(name): _rate(errors_raw, name) for name in errors_raw}
        stream_raw = d.get("stream_errors") or {}
        if not isinstance(stream_raw, dict):
            raise FaultConfigError("stream_errors must be an object of stream error -> rate")
        unknown_stream = sorted(set(stream_raw) - set(STREAM_ERRORS))
        if unknown_stream:
            raise FaultConfigError(f"unknown stream errors: {', '.join(unknown_stream)}")
        stream_errors = {str(name): _rate(stream_raw, name) for name in stream_raw}
        operations_raw = d.get("operations")
        operations: list[str] | None = None
        if operations_raw is not None:
            if not isinstance(operations_raw, list) or not all(
                isinstance(o, str) for o in operations_raw
            ):
                raise FaultConfigError("operations must be a list of operation names")
            operations = list(operations_raw)
        return cls(
            throttle=_rate(d, "throttle"),
            server_error=_rate(d, "server_error"),
            drop=_rate(d, "drop"),
            lost_response=_rate(d, "lost_response"),
            latency_rate=_rate(d, "latency_rate"),
            latency_ms=int(latency_ms),
            errors=errors,
            operations=operations,
            stream_break=_rate(d, "stream_break"),
            stream_errors=stream_errors,
            update_failed=_rate(d, "update_failed"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation in self.operations


def parse_faults(
    doc: Any, operations: Collection[str], error_names: Collection[str] = ()
) -> FaultConfig:
    """A validated ``FaultConfig`` of one service: its ``operations`` are among that
    service's ``operations`` and its ``errors`` among the exceptions it models
    (``error_names``; a service without any refuses ``errors``)."""
    config = FaultConfig.from_dict(doc)
    if config.errors and not error_names:
        raise FaultConfigError("errors are AgentCore exception names; use server_error")
    unknown_errors = sorted(set(config.errors) - set(error_names))
    if unknown_errors:
        raise FaultConfigError(f"unknown error types: {', '.join(unknown_errors)}")
    if config.operations is not None:
        unknown = [o for o in config.operations if o not in operations]
        if unknown:
            raise FaultConfigError(f"unknown operations: {', '.join(unknown)}")
    return config


@dataclass(frozen=True)
class Fault:
    """What to do to one call: wait, then drop it, answer an error, or serve it (and
    maybe lose the answer)."""

    delay_seconds: float = 0.0
    drop: bool = False
    #: Serve the call, then drop the connection instead of answering.
    lose_response: bool = False
    #: Answer this error instead of serving the call: ``throttle``, ``server_error``, or
    #: a modeled exception named in ``errors``; the service words it.
    error: str | None = None
    # Which counters to bump (subset of FAULT_KINDS).
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class StreamFault:
    """What fault injection decided for one event stream: cut it, or end it with an error."""

    cut: bool = False
    error: str | None = None


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
        # Latency combines with any other outcome, like a slow network would.
        if cfg.latency_rate and self._rng.random() < cfg.latency_rate:
            delay = cfg.latency_ms / 1000.0
            kinds.append("latency")
        if cfg.drop and self._rng.random() < cfg.drop:
            return Fault(delay, drop=True, kinds=(*kinds, "drop"))
        if cfg.server_error and self._rng.random() < cfg.server_error:
            return Fault(delay, error="server_error", kinds=(*kinds, "server_error"))
        for name, rate in cfg.errors.items():
            if rate and self._rng.random() < rate:
                return Fault(delay, error=name, kinds=(*kinds, "errors"))
        if cfg.throttle and self._rng.random() < cfg.throttle:
            return Fault(delay, error="throttle", kinds=(*kinds, "throttle"))
        if cfg.lost_response and self._rng.random() < cfg.lost_response:
            return Fault(delay, lose_response=True, kinds=(*kinds, "lost_response"))
        return Fault(delay, kinds=tuple(kinds))

    def decide_stream(self, operation: str) -> tuple[StreamFault, tuple[str, ...]]:
        """Whether an event stream (InvokeHarness) is cut or ends in an in-stream error
        midway."""
        cfg = self.config
        if not cfg.applies_to(operation):
            return StreamFault(), ()
        for name, rate in cfg.stream_errors.items():
            if rate and self._rng.random() < rate:
                return StreamFault(error=name), ("stream_errors",)
        if cfg.stream_break and self._rng.random() < cfg.stream_break:
            return StreamFault(cut=True), ("stream_break",)
        return StreamFault(), ()

    def decide_update_failure(self, operation: str) -> bool:
        """Whether an accepted update (UpdateEvaluator) ends failed."""
        cfg = self.config
        if not cfg.applies_to(operation) or not cfg.update_failed:
            return False
        return self._rng.random() < cfg.update_failed
