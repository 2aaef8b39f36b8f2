"""InvokeHarness: run one scenario item under a given session id and read its event stream
to the end.

A session id is used at most once per attempt: InvokeHarness is not idempotent (the same
id continues the conversation). So what the service refused with an answer (throttling,
validation, a missing harness) or what never reached it (no connection) is raised as the
usual classified error: the session was not used. Whatever may have reached the harness
and then ended short (a cut or silent connection, an in-stream server error) is
:class:`~worker.errors.StreamInterrupted`, telling the caller the session was consumed;
an in-stream validation error is permanent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.eventstream
import botocore.exceptions
import urllib3.exceptions

from api_contracts import ReasonCode
from worker.backends.agentcore.classification import classify
from worker.backends.agentcore.client import make_harness_client
from worker.errors import (
    EvalqError,
    PermanentError,
    RemoteJobNotFound,
    RemoteRejected,
    StreamInterrupted,
)
from worker.observability.redaction import redact
from worker.settings import Settings

#: In-stream errors (stream member names) that a new attempt may get past: the harness's
#: server failed, or the agent's runtime did (424, a failed dependency).
_RETRYABLE_STREAM_ERRORS = frozenset({"internalServerException", "runtimeClientError"})
#: Transport failures while reading the stream: botocore reads it straight from urllib3.
_TRANSPORT_ERRORS = (
    urllib3.exceptions.HTTPError,  # ProtocolError (cut connection), ReadTimeoutError
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ConnectionError,
    botocore.eventstream.ParserError,  # a truncated or corrupted frame
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class HarnessRun:
    """What one invocation produced, read to the end of its stream."""

    session_id: str
    #: The ``stopReason`` of the last ``messageStop`` (``end_turn``, ``max_tokens``, ...).
    stop_reason: str
    #: Text of the last message (the agent's final answer).
    text: str
    #: The ``metadata`` event: ``usage`` (token counts) and ``metrics`` (``latencyMs``).
    metadata: dict[str, Any] = field(default_factory=dict)
    events: int = 0


class HarnessClient:
    """A thin hook over ``invoke_harness``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def from_settings(cls, settings: Settings) -> HarnessClient:
        return cls(make_harness_client(settings))

    def invoke(
        self,
        harness_arn: str,
        session_id: str,
        messages: list[dict[str, Any]],
        qualifier: str | None = None,
        on_event: Callable[[], None] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> HarnessRun:
        """Invoke the harness once and read the stream to its end; ``on_event`` is called
        after each event (a sign of life for whoever watches the call). ``overrides``:
        InvokeHarness's per-call members as boto3 takes them (``model``, ``tools``, ...,
        ``ScenarioRun.harness_overrides_for``); they never replace the call's harness,
        session or messages."""
        params: dict[str, Any] = {
            **(overrides or {}),
            "harnessArn": harness_arn,
            "runtimeSessionId": session_id,
            "messages": messages,
        }
        if qualifier is not None:
            params["qualifier"] = qualifier
        try:
            response = self.client.invoke_harness(**params)
        except Exception as exc:
            raise _before_stream(exc, harness_arn) from exc
        stream = response["stream"]
        try:
            return _read(stream, session_id, on_event)
        finally:
            stream.close()


def _before_stream(exc: BaseException, harness_arn: str) -> EvalqError:
    error = classify(exc)
    if isinstance(error, RemoteJobNotFound):
        # A harness that does not exist: the request names the wrong one.
        return PermanentError(str(error), ReasonCode.invalid_request)
    sent = isinstance(exc, (botocore.exceptions.HTTPClientError, *_TRANSPORT_ERRORS))
    never_connected = isinstance(
        exc, botocore.exceptions.ConnectTimeoutError | botocore.exceptions.EndpointConnectionError
    )
    if sent and not never_connected:
        # Sent, but no answer: the harness may have started on the session.
        return StreamInterrupted(f"{harness_arn}: no answer to InvokeHarness ({error})")
    return error


@dataclass
class _Reading:
    stop_reason: str | None = None
    last_text: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    events: int = 0

    def take(self, event: dict[str, Any]) -> None:
        self.events += 1
        if "messageStart" in event:
            self.last_text = []
        elif "contentBlockDelta" in event:
            text = event["contentBlockDelta"].get("delta", {}).get("text")
            if text:
                self.last_text.append(text)
        elif "messageStop" in event:
            self.stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self.metadata = event["metadata"]


def _read(stream: Any, session_id: str, on_event: Callable[[], None] | None) -> HarnessRun:
    reading = _Reading()
    try:
        for event in stream:
            reading.take(event)
            if on_event is not None:
                on_event()
    except botocore.exceptions.EventStreamError as exc:
        raise _in_stream(exc, session_id, reading) from exc
    except _TRANSPORT_ERRORS as exc:
        raise StreamInterrupted(
            redact(
                f"Session {session_id}: the stream broke after {reading.events} events "
                f"({type(exc).__name__}: {exc})"
            )
        ) from exc
    if reading.stop_reason is None:
        raise StreamInterrupted(
            f"Session {session_id}: the stream ended after {reading.events} events "
            "without a messageStop"
        )
    return HarnessRun(
        session_id=session_id,
        stop_reason=reading.stop_reason,
        text="".join(reading.last_text),
        metadata=reading.metadata,
        events=reading.events,
    )


def _in_stream(
    exc: botocore.exceptions.EventStreamError, session_id: str, reading: _Reading
) -> EvalqError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    text = redact(
        f"Session {session_id}: {code} after {reading.events} events: {error.get('Message', '')}"
    )
    if code in _RETRYABLE_STREAM_ERRORS:
        return StreamInterrupted(text)
    # validationException and any error the model may add later: the same input fails again.
    return RemoteRejected(text, ReasonCode.remote_validation)
