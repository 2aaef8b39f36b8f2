"""Aymara's failures (as ``aymara-ai-sdk`` raises them) mapped onto evalq's one error
hierarchy (``worker.errors``).

Aymara answers errors as ``{"error": {"code", "message", "details"}, "request_id"}``; the
remote's own code and message become the error text, so a dead letter says what Aymara
said. Statuses decide the class (``worker.backends.http_status``): 400/404/422 are the
request's fault (``invalid_request``), 401/403 ``unauthorized``, 429 throttling (its
``retry-after-ms`` / ``Retry-After`` honoured), 408 and 5xx retryable, 409 a conflict; a 404
on a call that names a run says the run is gone (``RemoteJobNotFound``).
"""

from __future__ import annotations

from typing import Any

import aymara_ai

from api_contracts import ReasonCode
from worker.backends.http_status import classify_status
from worker.errors import EvalqError, PermanentError, RetryableError
from worker.observability.redaction import redact


def remote_message(status: int, body: Any) -> str:
    """``HTTP <status> <code>: <message>`` from Aymara's error envelope (or the raw body)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or "error"
        text = f"HTTP {status} {code}: {error.get('message') or ''}".rstrip(": ")
        details = error.get("details")
        return f"{text} {details}" if details else text
    if isinstance(body, dict) and "detail" in body:  # FastAPI's own 422, before Aymara's code
        return f"HTTP {status}: {body['detail']}"
    return f"HTTP {status}: {body}" if body not in (None, "") else f"HTTP {status}"


def classify(exc: BaseException, *, run_lookup: bool = False) -> EvalqError:
    """Map an ``aymara_ai`` failure onto evalq's error hierarchy; ``run_lookup``: the call
    named an existing run (get, delete, list its responses)."""
    if isinstance(exc, aymara_ai.APIStatusError):
        message = redact(remote_message(exc.status_code, exc.body))
        return classify_status(
            exc.status_code, message, exc.response.headers, run_lookup=run_lookup
        )
    if isinstance(exc, aymara_ai.APIConnectionError):  # APITimeoutError included
        return RetryableError(redact(f"{type(exc).__name__}: {exc}"))
    if isinstance(exc, aymara_ai.APIResponseValidationError):
        # A 2xx whose body is not what the SDK knows: a proxy's page, or a newer API.
        return RetryableError(redact(f"unexpected answer from Aymara: {exc}"))
    return PermanentError(redact(f"{type(exc).__name__}: {exc}"), ReasonCode.internal_error)
