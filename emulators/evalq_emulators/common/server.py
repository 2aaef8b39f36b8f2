"""HTTP front end of the JSON emulators: the service's API, and the ``/_emulator/*``
control plane that the AgentCore emulator offers (health, stats, jobs, faults, reset).

The API path of each call: route it (an unknown route gets the service's own 404), roll
its faults (wait, drop the connection, answer a throttle or a 5xx), authenticate it,
serve it; a ``lost_response`` fault serves the call and then drops the answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, urlsplit

from ..agentcore.config import FaultConfigError
from .http import EmulatorHTTPServer, KeepAliveHandler
from .messages import Reply, Request, ServiceError

if TYPE_CHECKING:
    from .service import JsonService

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"


class _HTTPServer(EmulatorHTTPServer):
    def __init__(self, address: tuple[str, int], service: JsonService) -> None:
        self.service = service
        super().__init__(address, _Handler)


class _Handler(KeepAliveHandler):
    server: _HTTPServer

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if url.path.startswith(CONTROL_PREFIX):
            reply: Reply | None = _control(self.server.service, request)
        else:
            reply = serve_call(self.server.service, request)
        if reply is None:
            self._drop()
        else:
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        data = b"" if reply.body is None else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            if reply.body is not None:
                self.send_header("Content-Type", "application/json")
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client went away (its own timeout)

    def _drop(self) -> None:
        """Close the connection without a byte of response, like a dead load balancer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def serve_call(service: JsonService, request: Request) -> Reply | None:
    """Serve one API call; None means drop the connection."""
    routed = service.route(request.method, request.path)
    operation = routed[0] if routed is not None else None
    fault = service.begin_call(operation)
    if fault.delay_seconds:
        time.sleep(fault.delay_seconds)
    if fault.drop:
        return None
    try:
        if fault.error is not None:
            return service.fault_reply(fault.error, operation)
        service.authenticate(request)
        if routed is None:
            return service.unknown_route(request)
        reply = service.serve(routed[0], routed[1], request)
    except ServiceError as err:
        return err.reply
    except Exception:
        log.exception("emulator bug while serving %s %s", request.method, request.path)
        return service.fault_reply("server_error", operation)
    return None if fault.lose_response else reply


def _control(service: JsonService, request: Request) -> Reply:
    key = (request.method, request.path.removeprefix(CONTROL_PREFIX).rstrip("/"))
    if key == ("GET", "health"):
        return Reply(200, {"ok": True})
    if key == ("GET", "stats"):
        return Reply(200, service.stats())
    if key == ("GET", "jobs"):
        return Reply(200, service.jobs())
    if key == ("POST", "reset"):
        service.reset()
        return Reply(200, {"ok": True})
    if key == ("GET", "faults"):
        return Reply(200, service.fault_config().to_dict())
    if key == ("POST", "faults"):
        try:
            config = service.set_faults(request.json() or {})
        except (ValueError, FaultConfigError) as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(200, config.to_dict())
    own = service.control(request.method, key[1], request)
    if own is not None:
        return own
    return Reply(404, {"error": f"unknown control endpoint {request.method} {request.path}"})


class JsonApiServer:
    """A JSON emulator served from a daemon thread; usable as a context manager."""

    def __init__(self, service: JsonService, host: str = "127.0.0.1", port: int = 0) -> None:
        self.service = service
        self.host = host
        self._httpd = _HTTPServer((host, port), service)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    service: JsonService,
    host: str,
    port: int,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; ``ready(url)`` is called once the socket listens."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    server = JsonApiServer(service, host, port).start()
    try:
        if ready is not None:
            ready(server.url)
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
