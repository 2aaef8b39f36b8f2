"""Start-up configuration of the AgentCore emulator: quotas, timing and fault injection
(the configuration every emulator shares, ``common.faults.FaultConfig``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common.faults import FaultConfig

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
#: How a batch evaluation finds the sessions it names (``named_sessions``).
NAMED_SESSIONS = ("traces", "harness")

__all__ = [
    "CONTROL_PLANE",
    "DATA_PLANE",
    "OPERATIONS",
    "SERVICE_OF",
    "EmulatorConfig",
    "FaultConfig",
]


@dataclass
class EmulatorConfig:
    """Everything the emulator needs at start-up; durations are in emulated seconds."""

    host: str = "127.0.0.1"
    port: int = 0
    # Emulated seconds per real second: 60 makes a 6-minute job take 6 real seconds.
    time_scale: float = 1.0
    #: The region of unsigned calls; a SigV4-signed call is served in the region of its
    #: credential scope (each region its own jobs, evaluators and harnesses).
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
    #: How a batch evaluation finds the session ids it names: ``traces`` (what a producer
    #: naming its own agents' sessions expects) counts an id the emulator's harness never
    #: ran as an ingested trace; ``harness`` counts only sessions its harness ran, once
    #: ingested. Either way a session the harness ran counts once ingested, in its region.
    named_sessions: str = "traces"
    #: Real seconds the credentials STS AssumeRole hands out stay valid.
    sts_credential_seconds: float = 3600.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.named_sessions not in NAMED_SESSIONS:
            raise ValueError(f"named_sessions must be one of {', '.join(NAMED_SESSIONS)}")

    def real_seconds(self, emulated: float) -> float:
        """Convert an emulated duration into real (wall-clock) seconds."""
        return emulated / self.time_scale
