"""Agno AgentOS's failures (httpx answers and transport errors) mapped onto evalq's one
error hierarchy (``worker.errors``).

AgentOS answers errors as FastAPI does: ``{"detail": "..."}`` (AgentOS may add
``error_code``, ``error_id``, ``error_type``), and a 422 as ``{"detail": [pydantic
errors]}``; that detail becomes the error text, so a dead letter says what AgentOS said.
Statuses decide the class (``worker.backends.http_status``): 400/404/422 are the request's
fault (``invalid_request``: both or neither agent and team, an unknown agent, team or
database, a missing ``expected_output``), 401/403 ``unauthorized``, 429 throttling, 5xx
retryable; a 404 on a call that names a run says the run is gone (``RemoteJobNotFound``).
"""

from __future__ import annotations

from typing import Any

import httpx

from api_contracts import ReasonCode
from worker.backends.http_status import classify_status
from worker.errors import EvalqError, PermanentError, RetryableError
from worker.observability.redaction import redact


def remote_message(response: httpx.Response) -> str:
    """``HTTP <status>: <detail>``, a 422's errors as ``<loc>: <msg>`` lines joined by ``; ``."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text.strip()
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        detail = "; ".join(_pydantic_error(item) for item in detail)
    return f"HTTP {response.status_code}: {detail}" if detail else f"HTTP {response.status_code}"


def _pydantic_error(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", ()))
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", item))


def classify_response(response: httpx.Response, *, run_lookup: bool = False) -> EvalqError:
    """The error a failed AgentOS answer means; ``run_lookup``: the call named a run."""
    return classify_status(
        response.status_code,
        redact(remote_message(response)),
        response.headers,
        run_lookup=run_lookup,
    )


def classify(exc: BaseException) -> EvalqError:
    """Map a transport failure (no answer) onto evalq's error hierarchy."""
    if isinstance(exc, httpx.TransportError):  # timeouts, refused and dropped connections
        return RetryableError(redact(f"{type(exc).__name__}: {exc}"))
    return PermanentError(redact(f"{type(exc).__name__}: {exc}"), ReasonCode.internal_error)
