"""Amazon Bedrock AgentCore: the boto3 clients, error classification, batch evaluations,
harness invocations and evaluator updates."""

from worker.backends.agentcore.batch import AgentCoreBackend
from worker.backends.agentcore.classification import classify
from worker.backends.agentcore.client import (
    client_token,
    derive_job_name,
    make_client,
    make_control_client,
    make_harness_client,
    session_id,
)
from worker.backends.agentcore.evaluators import EvaluatorClient
from worker.backends.agentcore.harness import HarnessClient, HarnessRun

__all__ = [
    "AgentCoreBackend",
    "EvaluatorClient",
    "HarnessClient",
    "HarnessRun",
    "classify",
    "client_token",
    "derive_job_name",
    "make_client",
    "make_control_client",
    "make_harness_client",
    "session_id",
]
