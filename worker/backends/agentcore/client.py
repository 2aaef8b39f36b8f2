"""The boto3 clients for AgentCore (data and control plane), and the deterministic names
evalq gives its calls."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
from botocore.config import Config

from worker.settings import Settings

SERVICE = "bedrock-agentcore"
CONTROL_SERVICE = "bedrock-agentcore-control"
#: InvokeHarness session ids: 33-100 chars of ``[a-zA-Z0-9][a-zA-Z0-9-_]*``.
SESSION_ID_MIN, SESSION_ID_MAX = 33, 100


def client_token(request_id: str) -> str:
    """Deterministic ``clientToken`` (33-256 chars, ``[a-zA-Z0-9](-*[a-zA-Z0-9])*``): every
    delivery and every replay of one request asks for the same remote job."""
    return "evalq-" + hashlib.sha256(request_id.encode()).hexdigest()


def derive_job_name(prefix: str, request_id: str) -> str:
    """Unique valid ``batchEvaluationName`` (``[a-zA-Z][a-zA-Z0-9_]{0,47}``) carrying the
    prefix the janitor recognises; the same request always gets the same name."""
    return prefix + hashlib.sha256(request_id.encode()).hexdigest()[:32]


def session_id(request_id: str, index: int, attempt: int) -> str:
    """Deterministic InvokeHarness session id of attempt ``attempt`` of item ``index`` of
    request ``request_id``: every retry of one attempt names the same session, and a new
    attempt (after a stream died) a new one. Valid for the service (33-100 chars,
    ``[a-zA-Z0-9][a-zA-Z0-9-_]*``) and readable in traces."""
    if index < 0 or attempt < 0:
        raise ValueError("index and attempt must not be negative")
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:40]
    return f"evalq-{digest}-i{index}-a{attempt}"


def make_client(settings: Settings) -> Any:
    """The data-plane client (batch evaluations, InvokeHarness)."""
    return _client(SERVICE, settings.agentcore_endpoint_url, settings, settings.aws_read_timeout)


def make_harness_client(settings: Settings) -> Any:
    """The data-plane client for InvokeHarness: its read timeout bounds the silence
    between two events of a stream, not the whole call."""
    return _client(
        SERVICE, settings.agentcore_endpoint_url, settings, settings.harness_read_timeout
    )


def make_control_client(settings: Settings) -> Any:
    """The control-plane client (evaluators), at ``EVALQ_AGENTCORE_CONTROL_ENDPOINT_URL``
    or, unset, ``EVALQ_AGENTCORE_ENDPOINT_URL``."""
    return _client(
        CONTROL_SERVICE, settings.control_endpoint_url, settings, settings.aws_read_timeout
    )


def _client(service: str, endpoint_url: str | None, settings: Settings, read_timeout: float) -> Any:
    config = Config(
        # evalq retries on its own timer; botocore's in-process retries would sleep.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=8,
        user_agent_extra="evalq",
    )
    credentials: dict[str, str] = {}
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        credentials = {
            "aws_access_key_id": settings.aws_access_key_id.get_secret_value(),
            "aws_secret_access_key": settings.aws_secret_access_key.get_secret_value(),
        }
    return boto3.session.Session().client(
        service,
        region_name=settings.aws_region,
        endpoint_url=endpoint_url,
        config=config,
        **credentials,
    )
