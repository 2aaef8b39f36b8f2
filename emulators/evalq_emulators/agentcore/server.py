"""HTTP front end: routes requests to the API or the `/_emulator/*` control plane."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from ..common.http import EmulatorHTTPServer, KeepAliveHandler
from . import eventstream, sts, wire
from .config import EmulatorConfig, FaultConfig, FaultConfigError
from .errors import ApiError
from .harness import StreamPlan, stream_error_body
from .state import EmulatorState
from .validation import validate_input

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"


class _HTTPServer(EmulatorHTTPServer):
    def __init__(self, address: tuple[str, int], state: EmulatorState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class _Handler(KeepAliveHandler):
    server: _HTTPServer

    def _handle(self) -> None:
        url = urlsplit(self.path)
        # Always consume the whole body, or the next request on this connection is garbage.
        body = self._read_body()
        response: wire.WireResponse | _Stream | None
        if url.path.startswith(CONTROL_PREFIX):
            response = _control(self.server.state, self.command, url.path, body)
        elif sts.is_assume_role(self.command, url.path, body):
            status, xml = self.server.state.credentials.assume_role(body)
            headers = {"Content-Type": "text/xml", "Content-Length": str(len(xml))}
            response = wire.WireResponse(status, headers, xml)
        else:
            headers = dict(self.headers.items())
            response = _api(self.server.state, self.command, url.path, url.query, body, headers)
        if response is None:
            self._drop()
        elif isinstance(response, _Stream):
            self._send_stream(response)
        else:
            self._send(response)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, response: wire.WireResponse) -> None:
        try:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(response.body)
            self.wfile.flush()
        except OSError:
            # The client went away (e.g. its own timeout); nothing left to tell it.
            self.close_connection = True

    def _send_stream(self, stream: _Stream) -> None:
        """An event stream in HTTP chunks, one frame per chunk, paced in real time; the
        state learns how it ended (completed, broken by a fault, or the client left)."""
        plan, state = stream.plan, self.server.state
        outcome = "completed"
        try:
            self.send_response(200)
            self.send_header("Content-Type", eventstream.CONTENT_TYPE)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("x-amzn-RequestId", stream.request_id)
            self.end_headers()
            for frame in _frames(plan):
                time.sleep(plan.interval)
                self._write_chunk(frame)
            if plan.cut:
                outcome = "broken"
                self._drop()
                return
            if plan.error is not None:
                outcome = f"error:{plan.error}"
            self._write_chunk(b"")  # the last chunk: the response is complete
        except OSError:
            outcome = "client_gone"
            self.close_connection = True
        finally:
            state.finish_invocation(plan.invocation, outcome)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the connection without a byte of response, like a dead load balancer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Stream:
    """An InvokeHarness answer: sent as an event stream by the handler."""

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.request_id = str(uuid.uuid4())


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


def _api(
    state: EmulatorState,
    method: str,
    path: str,
    query: str,
    body: bytes,
    headers: dict[str, str] | None = None,
) -> wire.WireResponse | _Stream | None:
    """Serve one API call; None means drop the connection."""
    matched = wire.match_route(method, path)
    if matched is None:
        err = ApiError("UnknownOperationException", f"No operation for {method} {path}")
        return wire.encode_error(err, fallback_status=404)
    route, uri_params = matched
    try:
        state.credentials.check((headers or {}).get("Authorization"))
    except ApiError as err:
        return wire.encode_error(err, service=route.service, fallback_status=403)
    decision = state.begin_call(route.operation)
    if decision.delay_seconds:
        time.sleep(decision.delay_seconds)  # outside the lock: other calls proceed
    if decision.drop:
        return None
    try:
        if decision.error is not None:
            raise decision.error
        # Throttling is decided before the request is even looked at, as in AWS.
        state.check_rate(route.operation)
        params = wire.parse_request(route.operation, uri_params, query, body, headers)
        validate_input(route.operation, params)
        if route.operation == "InvokeHarness":
            plan = state.invoke_harness(params)
            if decision.lose_response:
                state.finish_invocation(plan.invocation, "lost_response")
                return None
            return _Stream(plan)
        output = wire.encode_output(route, state.dispatch(route.operation, params))
        return None if decision.lose_response else output
    except ApiError as err:
        return wire.encode_error(err, service=route.service)
    except Exception:
        log.exception("emulator bug while serving %s", route.operation)
        bug = ApiError("InternalServerException", "Emulator internal error")
        return wire.encode_error(bug, service=route.service)


def _control(state: EmulatorState, method: str, path: str, body: bytes) -> wire.WireResponse:
    key = (method, path.removeprefix(CONTROL_PREFIX).rstrip("/"))
    if key == ("GET", "health"):
        return wire.json_response(200, {"ok": True})
    if key == ("GET", "stats"):
        return wire.json_response(200, state.stats())
    if key == ("GET", "jobs"):
        return wire.json_response(200, state.jobs())
    if key == ("GET", "evaluators"):
        return wire.json_response(200, state.evaluators())
    if key == ("GET", "sessions"):
        return wire.json_response(200, state.sessions())
    if key == ("POST", "reset"):
        state.reset()
        return wire.json_response(200, {"ok": True})
    if key == ("GET", "faults"):
        return wire.json_response(200, state.faults().to_dict())
    if key == ("POST", "faults"):
        try:
            faults = FaultConfig.from_dict(json.loads(body or b"{}"))
            state.set_faults(faults)
        except (ValueError, FaultConfigError) as exc:
            return wire.json_response(400, {"error": str(exc)})
        return wire.json_response(200, faults.to_dict())
    return wire.json_response(404, {"error": f"unknown control endpoint {method} {path}"})


class EmulatorServer:
    """The emulator served from a daemon thread; usable as a context manager."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        # Load the service model before the first request, not during it.
        wire.routes()
        self._httpd = _HTTPServer((self.config.host, self.config.port), self.state)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # bounds how long stop() waits
            name=f"agentcore-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("emulator not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.config.host
        # A wildcard bind is reachable on loopback; clients cannot connect to 0.0.0.0.
        if host in ("", "0.0.0.0"):  # noqa: S104 - comparing, not binding
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(config: EmulatorConfig, ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; `ready(url)` is called once the socket listens."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    server = EmulatorServer(config).start()
    try:
        if ready is not None:
            ready(server.url)
        # Short waits so the signal handler gets to run promptly in the main thread.
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
