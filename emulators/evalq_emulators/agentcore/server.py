"""The AgentCore emulator on the common HTTP server: its rest-json routes, credentials
(STS on the same port), modeled errors and InvokeHarness event streams."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Self

from ..common import Reply, Request, ServiceError, ServiceServer, Stream
from . import eventstream, sts, wire
from .config import SERVICE_OF, EmulatorConfig
from .errors import ApiError, throttled
from .harness import StreamPlan, stream_error_body
from .state import EmulatorState
from .validation import validate_input


class AgentCoreService(EmulatorState):
    """The emulated AgentCore as the common server serves it (``common.Service``)."""

    def intercept(self, request: Request) -> Reply | None:
        """STS AssumeRole (query protocol) is answered on the same port, outside the API."""
        if not sts.is_assume_role(request.method, request.path, request.body):
            return None
        status, xml = self.credentials.assume_role(request.body)
        headers = {"Content-Type": "text/xml", "Content-Length": str(len(xml))}
        return Reply(status, headers=headers, raw=xml)

    def route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        matched = wire.match_route(method, path)
        if matched is None:
            return None
        route, uri_params = matched
        return route.operation, uri_params

    def unknown_route(self, request: Request) -> Reply:
        err = ApiError(
            "UnknownOperationException", f"No operation for {request.method} {request.path}"
        )
        return wire.encode_error(err, fallback_status=404)

    def authenticate(self, request: Request) -> None:
        try:
            self.credentials.check(request.headers.get("authorization"))
        except ApiError as err:
            raise ServiceError(wire.encode_error(err, fallback_status=403)) from None

    def fault_reply(self, kind: str, operation: str) -> Reply:
        if kind == "throttle":
            err = throttled(operation)
        elif kind == "server_error":
            err = ApiError("InternalServerException", "Injected internal server error")
        else:
            err = ApiError(kind, f"Injected {kind}")
            if kind == "ValidationException":
                err.fields.update(reason="FieldValidationFailed", fieldList=[])
        return wire.encode_error(err, service=SERVICE_OF[operation])

    def internal_error(self, operation: str) -> Reply:
        bug = ApiError("InternalServerException", "Emulator internal error")
        return wire.encode_error(bug, service=SERVICE_OF[operation])

    def serve(self, operation: str, params: dict[str, str], request: Request) -> Reply | Stream:
        try:
            # Throttling is decided before the request is even looked at, as in AWS.
            self.check_rate(operation)
            args = wire.parse_request(operation, params, request.query, request.body,
                                      request.headers)  # fmt: skip
            validate_input(operation, args)
            # Served in the region the call is signed for, as the service's regional
            # endpoints are (unsigned calls: the configured region).
            region = sts.signed_region(request.headers.get("authorization")) or self.config.region
            if operation == "InvokeHarness":
                return self._stream(self.invoke_harness(args, region))
            return wire.encode_output(operation, self.dispatch(operation, args, region))
        except ApiError as err:
            return wire.encode_error(err, service=SERVICE_OF[operation])

    def _stream(self, plan: StreamPlan) -> Stream:
        """An InvokeHarness answer: its events (and in-stream error) as event-stream frames;
        the invocation learns how the stream ended."""
        return Stream(
            headers={
                "Content-Type": eventstream.CONTENT_TYPE,
                "x-amzn-RequestId": str(uuid.uuid4()),
            },
            frames=_frames(plan),
            interval=plan.interval,
            on_end=lambda outcome: self.finish_invocation(plan.invocation, outcome),
            outcome="completed" if plan.error is None else f"error:{plan.error}",
            cut=plan.cut,
        )

    def control(self, method: str, name: str, request: Request) -> Reply | None:
        """``GET /_emulator/evaluators`` (every evaluator's update calls and status
        changes) and ``GET /_emulator/sessions`` (harness sessions and invocations)."""
        if (method, name) == ("GET", "evaluators"):
            return Reply(200, self.evaluators())
        if (method, name) == ("GET", "sessions"):
            return Reply(200, self.sessions())
        return None


def _frames(plan: StreamPlan) -> list[bytes]:
    """The encoded frames of a stream plan: events, then the in-stream error if any."""
    shape = wire.operation_model("InvokeHarness").output_shape.members["stream"]
    frames = [
        eventstream.event_message(kind, wire.encode_shape(shape.members[kind], body))
        for kind, body in plan.events
    ]
    if plan.error is not None:
        body = stream_error_body(plan.error, plan.invocation.session_id)
        frames.append(
            eventstream.exception_message(
                plan.error, wire.encode_shape(shape.members[plan.error], body)
            )
        )
    return frames


class EmulatorServer(ServiceServer):
    """The AgentCore emulator served from a daemon thread; usable as a context manager::

    with EmulatorServer(EmulatorConfig(time_scale=100)) as emu:
        client = boto3.client("bedrock-agentcore", endpoint_url=emu.url, ...)
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        """``clock``: the emulated account's time (its jobs, rates, credentials) instead
        of the wall clock, e.g. a test's manual clock; ``sleep``: how a call waits out an
        emulated duration on it (a stream's pace), e.g. moving that clock on."""
        self.config = config or EmulatorConfig()
        self.state = _account(self.config, clock, sleep)
        super().__init__(self.state, self.config.host, self.config.port)

    def serve_anew(
        self,
        config: EmulatorConfig | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> AgentCoreService:
        """A fresh emulated account from now on, on the same port (``host`` and ``port``
        of ``config`` are not looked at): a test's own, on a server its session shares."""
        self.config = config or self.config
        self.state = _account(self.config, clock, sleep)
        self.serve(self.state)
        return self.state

    def start(self) -> Self:
        # Load the service model before the first request, not during it.
        wire.routes()
        return super().start()


def _account(
    config: EmulatorConfig,
    clock: Callable[[], float] | None,
    sleep: Callable[[float], None] | None,
) -> AgentCoreService:
    given: dict[str, Any] = {}
    if clock is not None:
        given.update(clock=clock, monotonic=clock)
    if sleep is not None:
        given["sleep"] = sleep
    return AgentCoreService(config, **given)
