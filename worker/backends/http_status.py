"""What an HTTP service's status code means for evalq, shared by the backends that speak
plain HTTP (Aymara, Agno AgentOS): one mapping onto the error hierarchy in
``worker.errors``, and the ``Retry-After`` a throttled answer carries."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from api_contracts import ReasonCode
from worker.errors import (
    EvalqError,
    PermanentError,
    RemoteConflict,
    RemoteJobNotFound,
    RetryableError,
    Throttled,
)

#: Statuses that say the request itself is wrong: the remote's message is the reason.
INVALID_STATUSES = frozenset({400, 404, 422})
UNAUTHORIZED_STATUSES = frozenset({401, 403})


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (Stainless SDKs' header) or ``Retry-After``
    (seconds or an HTTP date); None when neither is there or readable."""
    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def classify_status(
    status: int,
    message: str,
    headers: Mapping[str, str],
    *,
    run_lookup: bool = False,
) -> EvalqError:
    """The error a failed answer means. ``run_lookup``: the call named an existing run
    (get, rename, delete), so a 404 says the run is gone rather than the request wrong
    (a backend whose service answers 404 about other things too sets those apart first:
    Aymara's missing organization or workspace, ``aymara/classification.py``)."""
    if status == 404 and run_lookup:
        return RemoteJobNotFound(message)
    if status in INVALID_STATUSES:
        return PermanentError(message, ReasonCode.invalid_request)
    if status in UNAUTHORIZED_STATUSES:
        return PermanentError(message, ReasonCode.unauthorized)
    if status == 429:
        return Throttled(message, retry_after=retry_after(headers))
    if status == 409:
        return RemoteConflict(message)
    if status == 408 or status >= 500:
        return RetryableError(message, retry_after=retry_after(headers))
    if status >= 400:
        return PermanentError(message, ReasonCode.invalid_request)
    # A redirect or an informational answer where JSON was due: evalq or its settings
    # are wrong (a base URL that redirects), not the request.
    return PermanentError(message, ReasonCode.internal_error)
