"""Start-up configuration of the emulator: quotas, timing and fault injection."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: The two botocore service models the emulator serves on one port.
DATA_PLANE = "bedrock-agentcore"
CONTROL_PLANE = "bedrock-agentcore-control"

#: Every operation the emulator serves, and the service model it belongs to; faults may be
#: restricted to a subset.
SERVICE_OF: dict[str, str] = {
    "StartBatchEvaluation": DATA_PLANE,
    "GetBatchEvaluation": DATA_PLANE,
    "StopBatchEvaluation": DATA_PLANE,
    "DeleteBatchEvaluation": DATA_PLANE,
    "ListBatchEvaluations": DATA_PLANE,
    "InvokeHarness": DATA_PLANE,
    "CreateEvaluator": CONTROL_PLANE,
    "GetEvaluator": CONTROL_PLANE,
    "UpdateEvaluator": CONTROL_PLANE,
    "DeleteEvaluator": CONTROL_PLANE,
    "ListEvaluators": CONTROL_PLANE,
    "CreateOnlineEvaluationConfig": CONTROL_PLANE,
    "GetOnlineEvaluationConfig": CONTROL_PLANE,
    "ListOnlineEvaluationConfigs": CONTROL_PLANE,
    "UpdateOnlineEvaluationConfig": CONTROL_PLANE,
    "DeleteOnlineEvaluationConfig": CONTROL_PLANE,
}
OPERATIONS: tuple[str, ...] = tuple(SERVICE_OF)

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
        """Build from the JSON document of `POST /_emulator/faults` (all keys optional)."""
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
            bad = [o for o in operations_raw if o not in OPERATIONS]
            if bad:
                raise FaultConfigError(f"unknown operations: {', '.join(bad)}")
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


@dataclass
class EmulatorConfig:
    """Everything the emulator needs at start-up; durations are in emulated seconds."""

    host: str = "127.0.0.1"
    port: int = 0
    # Emulated seconds per real second: 60 makes a 6-minute job take 6 real seconds.
    time_scale: float = 1.0
    region: str = "us-east-1"
    max_active: int = 5
    max_jobs: int = 2000
    mutate_tps: float = 3.0
    read_tps: float = 60.0
    pending_seconds: float = 2.0
    session_seconds: float = 6.0
    default_sessions: int = 10
    stop_seconds: float = 3.0
    #: Emulated seconds an evaluator or online evaluation config spends CREATING.
    create_seconds: float = 1.0
    #: Emulated seconds an evaluator spends UPDATING after UpdateEvaluator.
    update_seconds: float = 10.0
    #: Emulated seconds one InvokeHarness event stream takes from first to last event.
    harness_seconds: float = 3.0
    #: Emulated seconds before a harness session's traces can be found by a batch
    #: evaluation (CloudWatch ingestion); 0 finds them at once.
    ingestion_seconds: float = 0.0
    #: InvokeHarness calls per second (an emulator limit, not a published AWS quota).
    harness_tps: float = 100.0
    #: Real seconds the credentials STS AssumeRole hands out stay valid.
    sts_credential_seconds: float = 3600.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")

    def real_seconds(self, emulated: float) -> float:
        """Convert an emulated duration into real (wall-clock) seconds."""
        return emulated / self.time_scale
