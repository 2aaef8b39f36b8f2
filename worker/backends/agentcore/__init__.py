"""Amazon Bedrock AgentCore: the boto3 client, error classification, batch evaluations."""

from worker.backends.agentcore.batch import AgentCoreBackend
from worker.backends.agentcore.classification import classify
from worker.backends.agentcore.client import client_token, derive_job_name, make_client

__all__ = ["AgentCoreBackend", "classify", "client_token", "derive_job_name", "make_client"]
