"""AgentCore's errors mapped onto evalq's one error hierarchy (``worker.errors``)."""

from __future__ import annotations

import botocore.exceptions
from botocore.retries.standard import (
    RetryContext,
    ThrottledRetryableChecker,
    TransientRetryableChecker,
)

from api_contracts import ReasonCode
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
from worker.observability.redaction import redact

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
