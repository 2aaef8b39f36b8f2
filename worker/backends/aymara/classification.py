"""Aymara's failures (as ``aymara-ai-sdk`` raises them) mapped onto evalq's one error
hierarchy (``worker.errors``).

Aymara answers errors as ``{"error": {"code", "message", "details"}, "request_id"}``; the
remote's own code and message become the error text, so a dead letter says what Aymara
said. Statuses decide the class (``worker.backends.http_status``): 400/404/422 are the
request's fault (``invalid_request``), 401/403 ``unauthorized``, 429 throttling (its
``retry-after-ms`` / ``Retry-After`` honoured), 408 and 5xx retryable, 409 a conflict; a 404
on a call that names a run says the run is gone (``RemoteJobNotFound``).

But Aymara answers 404 ``resource.not_found`` too when the key's organization is missing
or the workspace a call names does not exist; reading those as "the run is gone" would
finish a job FAILED, or count a delete as done, while its run goes on. Such a 404 is told
apart by the envelope (``details.resource``, else the message) and is permanent: a missing
organization is ``unauthorized`` (the key reaches no account: ops fix the deployment's
key, then replay), a missing workspace ``invalid_request`` (the request names it: the
producer fixes the request).
"""

from __future__ import annotations

import re
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


#: What a 404 about the run's owners means (a stable dead-letter reason each).
_MISSING_OWNER = {
    "organization": ReasonCode.unauthorized,
    "workspace": ReasonCode.invalid_request,
}
#: "run" as a word of its own, or of an identifier ("eval run", "eval_run", "score_run.").
_ABOUT_A_RUN = re.compile(r"(?<![a-z])runs?(?![a-z])")


def missing_owner(body: Any) -> str | None:
    """``organization`` or ``workspace`` when a 404's envelope is about one of them, not
    about the resource the call named: its ``details.resource`` says so, or else its
    message names one and no run (a message about a run, even one naming its workspace,
    is about the run)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    details = error.get("details")
    resource = details.get("resource") if isinstance(details, dict) else None
    if isinstance(resource, str):
        return resource if resource in _MISSING_OWNER else None
    message = str(error.get("message") or "").lower()
    if _ABOUT_A_RUN.search(message):
        return None
    return next((owner for owner in _MISSING_OWNER if owner in message), None)


def classify(exc: BaseException, *, run_lookup: bool = False) -> EvalqError:
    """Map an ``aymara_ai`` failure onto evalq's error hierarchy; ``run_lookup``: the call
    named an existing run (get, delete, list its responses)."""
    if isinstance(exc, aymara_ai.APIStatusError):
        message = redact(remote_message(exc.status_code, exc.body))
        owner = missing_owner(exc.body) if exc.status_code == 404 else None
        if owner is not None:
            return PermanentError(message, _MISSING_OWNER[owner])
        return classify_status(
            exc.status_code, message, exc.response.headers, run_lookup=run_lookup
        )
    if isinstance(exc, aymara_ai.APIConnectionError):  # APITimeoutError included
        return RetryableError(redact(f"{type(exc).__name__}: {exc}"))
    if isinstance(exc, aymara_ai.APIResponseValidationError):
        # A 2xx whose body is not what the SDK knows: a proxy's page, or a newer API.
        return RetryableError(redact(f"unexpected answer from Aymara: {exc}"))
    return PermanentError(redact(f"{type(exc).__name__}: {exc}"), ReasonCode.internal_error)
