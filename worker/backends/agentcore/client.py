"""The boto3 client for AgentCore, and the deterministic names evalq gives its calls."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
from botocore.config import Config

from worker.settings import Settings

SERVICE = "bedrock-agentcore"


def client_token(request_id: str) -> str:
    """Deterministic ``clientToken`` (33-256 chars, ``[a-zA-Z0-9](-*[a-zA-Z0-9])*``): every
    delivery and every replay of one request asks for the same remote job."""
    return "evalq-" + hashlib.sha256(request_id.encode()).hexdigest()


def derive_job_name(prefix: str, request_id: str) -> str:
    """Unique valid ``batchEvaluationName`` (``[a-zA-Z][a-zA-Z0-9_]{0,47}``) carrying the
    prefix the janitor recognises; the same request always gets the same name."""
    return prefix + hashlib.sha256(request_id.encode()).hexdigest()[:32]


def make_client(settings: Settings) -> Any:
    config = Config(
        # evalq retries on its own timer; botocore's in-process retries would sleep.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=settings.aws_read_timeout,
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
        SERVICE,
        region_name=settings.aws_region,
        endpoint_url=settings.agentcore_endpoint_url,
        config=config,
        **credentials,
    )
