"""Amazon Bedrock AgentCore batch evaluations through boto3 (a thin hook, Airflow-style)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config
from botocore.retries.standard import (
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

from api_contracts import EvaluationRequest, ReasonCode
from worker.backends.base import RemoteJob
from worker.errors import (
    BackPressure,
    EvalqError,
    PermanentError,
    RemoteConflict,
    RemoteJobNotFound,
    RemoteRejected,
    RetryableError,
    Throttled,
)
from worker.jobs import Job
from worker.redaction import redact
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


class AgentCoreBackend:
    name = "agentcore"

    def __init__(self, client: Any, name_prefix: str) -> None:
        self.client = client
        self.name_prefix = name_prefix

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentCoreBackend:
        return cls(make_client(settings), settings.job_name_prefix)

    def remote_name(self, request: EvaluationRequest) -> str:
        """The name the request's remote job gets: the producer's, else the derived one."""
        given = request.evaluation.batchEvaluationName
        return given or derive_job_name(self.name_prefix, request.request_id)

    def start(self, job: Job) -> RemoteJob:
        request = EvaluationRequest.model_validate(job.request)
        params = request.evaluation.to_boto3_kwargs()
        params.setdefault("batchEvaluationName", derive_job_name(self.name_prefix, job.request_id))
        params["clientToken"] = client_token(job.request_id)
        return _remote(self._call("start_batch_evaluation", **params))

    def get(self, remote_id: str) -> RemoteJob:
        return _remote(self._call("get_batch_evaluation", batchEvaluationId=remote_id))

    def stop(self, remote_id: str) -> RemoteJob:
        return _remote(self._call("stop_batch_evaluation", batchEvaluationId=remote_id))

    def delete(self, remote_id: str) -> None:
        try:
            self._call("delete_batch_evaluation", batchEvaluationId=remote_id)
        except RemoteJobNotFound:
            return

    def list_jobs(self) -> Iterator[RemoteJob]:
        token: str | None = None
        while True:
            jobs, token = self.list_page(token)
            yield from jobs
            if not token:
                return

    def list_page(self, token: str | None = None) -> tuple[list[RemoteJob], str | None]:
        """One ListBatchEvaluations page (for callers that rate-limit each call) and the
        token of the next page, if any."""
        page = self._call(
            "list_batch_evaluations", maxResults=100, **({"nextToken": token} if token else {})
        )
        return [_remote(s) for s in page.get("batchEvaluations", [])], page.get("nextToken")

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**params)
        except Exception as exc:
            raise classify(exc) from exc
        response.pop("ResponseMetadata", None)
        return response


#: botocore's own lists of throttling and transient error codes.
_THROTTLED = ThrottledRetryableChecker()
_TRANSIENT = TransientRetryableChecker()
#: Codes of this service that say "try again" with a 4xx status.
_RETRYABLE_CODES = frozenset({"RetryableConflictException"})
#: Codes AWS uses for missing, wrong or expired credentials (with 401, 403 or 400).
_UNAUTHORIZED_CODES = frozenset(
    {
        "UnauthorizedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)
_CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
    botocore.exceptions.TokenRetrievalError,
    botocore.exceptions.SSOError,
)


def classify(exc: BaseException) -> EvalqError:
    """Map a boto3/botocore failure onto evalq's error hierarchy."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        text = redact(f"{code}: {error.get('Message', '')}".strip())
        context = RetryContext(attempt_number=1, parsed_response=exc.response)
        if _THROTTLED.is_retryable(context) or status == 429:
            return Throttled(text)
        if code == "ServiceQuotaExceededException" or status == 402:
            return BackPressure(text)
        if code == "ResourceNotFoundException" or status == 404:
            return RemoteJobNotFound(text)
        # Before the 403 check: AWS answers bad or expired credentials with 403 or 400 too.
        if code in _UNAUTHORIZED_CODES or status == 401:
            return PermanentError(text, ReasonCode.unauthorized)
        if code == "AccessDeniedException" or status == 403:
            return PermanentError(text, ReasonCode.access_denied)
        if _TRANSIENT.is_retryable(context) or status == 408 or code in _RETRYABLE_CODES:
            return RetryableError(text)
        if code == "ConflictException" or status == 409:
            return RemoteConflict(text)
        if code == "ValidationException" or status == 400:
            return RemoteRejected(text, ReasonCode.remote_validation)
        return RetryableError(text) if status >= 500 or status == 0 else RemoteRejected(text)
    if isinstance(exc, _CREDENTIAL_ERRORS):
        return PermanentError(redact(str(exc)), ReasonCode.unauthorized)
    if isinstance(exc, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return RetryableError(redact(f"{type(exc).__name__}: {exc}"))
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return RemoteRejected(redact(str(exc)), ReasonCode.remote_validation)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return RetryableError(redact(f"{type(exc).__name__}: {exc}"))
    return PermanentError(redact(f"{type(exc).__name__}: {exc}"), ReasonCode.internal_error)


def _remote(body: dict[str, Any]) -> RemoteJob:
    safe = _json_safe(body)
    created = body.get("createdAt")
    return RemoteJob(
        id=safe["batchEvaluationId"],
        arn=safe.get("batchEvaluationArn"),
        name=safe.get("batchEvaluationName"),
        status=safe["status"],
        body=safe,
        created_at=created.timestamp() if isinstance(created, datetime) else None,
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
