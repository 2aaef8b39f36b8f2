"""The boto3 clients for AgentCore (data and control plane), and the deterministic names
evalq gives its calls."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

from worker.backends.naming import derived_name
from worker.keys import DEFAULT_TARGET
from worker.settings import Settings
from worker.targets.config import TargetConfig, TargetSpec

SERVICE = "bedrock-agentcore"
CONTROL_SERVICE = "bedrock-agentcore-control"
#: InvokeHarness session ids: 33-100 chars of ``[a-zA-Z0-9][a-zA-Z0-9-_]*``.
SESSION_ID_MIN, SESSION_ID_MAX = 33, 100


def client_token(request_id: str) -> str:
    """Deterministic ``clientToken`` (33-256 chars, ``[a-zA-Z0-9](-*[a-zA-Z0-9])*``): every
    delivery and every replay of one request asks for the same remote job."""
    return "evalq-" + hashlib.sha256(request_id.encode()).hexdigest()


#: Unique valid ``batchEvaluationName`` carrying the prefix the janitor recognises.
derive_job_name = derived_name


def session_id(request_id: str, index: int, attempt: int) -> str:
    """Deterministic InvokeHarness session id of attempt ``attempt`` of item ``index`` of
    request ``request_id``: every retry of one attempt names the same session, and a new
    attempt (after a stream died) a new one. Valid for the service (33-100 chars,
    ``[a-zA-Z0-9][a-zA-Z0-9-_]*``) and readable in traces."""
    if index < 0 or attempt < 0:
        raise ValueError("index and attempt must not be negative")
    digest = hashlib.sha256(request_id.encode()).hexdigest()[:40]
    return f"evalq-{digest}-i{index}-a{attempt}"


def make_client(settings: Settings, target: TargetConfig | None = None) -> Any:
    """The data-plane client (batch evaluations) of a target (unset: the one made of the
    settings alone)."""
    target = target or settings_target(settings)
    return _client(SERVICE, target.endpoint_url, settings, target, settings.aws_read_timeout)


def make_harness_client(settings: Settings, target: TargetConfig | None = None) -> Any:
    """The data-plane client for InvokeHarness: its read timeout bounds the silence
    between two events of a stream, not the whole call."""
    target = target or settings_target(settings)
    return _client(SERVICE, target.endpoint_url, settings, target, settings.harness_read_timeout)


def make_control_client(settings: Settings, target: TargetConfig | None = None) -> Any:
    """The control-plane client (evaluators), at the target's control endpoint (for the
    settings' target: ``EVALQ_AGENTCORE_CONTROL_ENDPOINT_URL``, else
    ``EVALQ_AGENTCORE_ENDPOINT_URL``)."""
    target = target or settings_target(settings)
    endpoint = target.control_endpoint_url or target.endpoint_url
    return _client(CONTROL_SERVICE, endpoint, settings, target, settings.aws_read_timeout)


def settings_target(settings: Settings) -> TargetConfig:
    """The target the ``EVALQ_*`` settings alone describe (region, endpoints)."""
    return TargetSpec(
        name=DEFAULT_TARGET,
        region=settings.aws_region,
        endpoint_url=settings.agentcore_endpoint_url,
        control_endpoint_url=settings.control_endpoint_url,
    ).resolve(settings)


def _client(
    service: str,
    endpoint_url: str | None,
    settings: Settings,
    target: TargetConfig,
    read_timeout: float,
) -> Any:
    config = Config(
        # evalq retries on its own timer; botocore's in-process retries would sleep.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=settings.aws_connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=8,
        user_agent_extra="evalq",
    )
    return session_for(settings, target).client(
        service, region_name=target.region, endpoint_url=endpoint_url, config=config
    )


def session_for(settings: Settings, target: TargetConfig) -> boto3.session.Session:
    """A boto3 session with the target's credentials: its role, assumed from the base
    credentials and refreshed by botocore before they expire; else the base credentials
    (the default chain, or the static keys the emulator takes)."""
    static: dict[str, str] = {}
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        static = {
            "aws_access_key_id": settings.aws_access_key_id.get_secret_value(),
            "aws_secret_access_key": settings.aws_secret_access_key.get_secret_value(),
        }
    base = boto3.session.Session(botocore_session=_botocore_session(), region_name=target.region,
                                 **static)  # fmt: skip
    if target.role_arn is None:
        return base
    assume: dict[str, str] = {"RoleSessionName": f"evalq-{target.name}"}
    if target.external_id:
        assume["ExternalId"] = target.external_id
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=lambda service, **kwargs: base.client(
            service, region_name=target.region, endpoint_url=target.sts_endpoint_url, **kwargs
        ),
        source_credentials=base.get_credentials(),
        role_arn=target.role_arn,
        extra_args=assume,
    )
    refreshing = DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    # boto3 takes credentials objects only through a botocore session (Airflow's AWS
    # hook does the same).
    core = _botocore_session()
    core._credentials = refreshing
    return boto3.session.Session(botocore_session=core, region_name=target.region)


#: One loader for every session of the process: it caches the service models and endpoint
#: data it has parsed, which a session of its own parses again (a client of a new target:
#: 137 ms with a loader of its own, 18 ms with this one; 200 targets made the janitor's
#: first sweep pass its 90 s time limit).
_LOADER = botocore.loaders.create_loader()


def _botocore_session() -> botocore.session.Session:
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    return core


def preload() -> None:
    """Parse the service models and endpoint data into the process's loader by building
    each client once (offline: no call, no credentials looked up). The worker does this
    before it forks its pool, so its processes share those pages instead of each parsing
    a copy of its own on its first call."""
    session = boto3.session.Session(botocore_session=_botocore_session(), region_name="us-east-1")
    unsigned = Config(signature_version=botocore.UNSIGNED)  # no credentials looked up
    for service in (SERVICE, CONTROL_SERVICE):
        session.client(service, config=unsigned)
