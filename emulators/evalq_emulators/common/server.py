"""The HTTP front end of every emulator: the service's API, and the ``/_emulator/*``
control plane (health, stats, jobs, faults, reset, and what the service adds).

The API path of each call (:func:`serve_call`): a call the service answers outside its
API (AgentCore: STS) is answered; an unknown route gets the service's own 404; the call
is authenticated (first, where the service checks credentials before anything else),
counted, its faults rolled (wait, drop the connection, answer a throttle, a 5xx or a
modeled exception), then served; a ``lost_response`` fault serves the call and then
drops the answer.
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from .faults import FaultConfigError
from .http import EmulatorHTTPServer, KeepAliveHandler
from .messages import Reply, Request, ServiceError, Stream
from .service import Service

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_emulator/"
#: ``/accounts/<id>/<the service's path>``: one emulator process serves many accounts,
#: each a service of its own (its jobs, quotas, rates and faults), made on first use from
#: the same settings; a client reaches one with ``endpoint_url=<url>/accounts/<id>``.
ACCOUNT_PATH = re.compile(r"^/accounts/(?P<account>[A-Za-z0-9_-]{1,64})(?P<rest>/.*)$")


class _HTTPServer(EmulatorHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        service: Service,
        make_account: Callable[[], Service] | None = None,
    ) -> None:
        self.service = service
        self.make_account = make_account
        self.accounts: dict[str, Service] = {}
        self._accounts_lock = threading.Lock()
        super().__init__(address, _Handler)

    def service_for(self, path: str) -> tuple[Service, str]:
        """The service a path is for (an account's, or the default one) and its path
        within that service."""
        found = ACCOUNT_PATH.match(path) if self.make_account is not None else None
        if found is None:
            return self.service, path
        account = found["account"]
        with self._accounts_lock:
            if account not in self.accounts:
                assert self.make_account is not None
                self.accounts[account] = self.make_account()
            return self.accounts[account], found["rest"]


class _Handler(KeepAliveHandler):
    server: _HTTPServer

    def _handle(self) -> None:
        url = urlsplit(self.path)
        # Always consume the whole body, or the next request on this connection is garbage.
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        service, path = self.server.service_for(url.path)
        request = Request(
            method=self.command,
            path=path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        if path.startswith(CONTROL_PREFIX):
            self._answer(control_plane(service, request), service)
            return
        # Counted while served and answered (a stream until its end): a test waits for
        # in_flight 0 to read what the service holds after a call evalq gave up on.
        service.served(+1)
        try:
            self._answer(serve_call(service, request), service)
        finally:
            service.served(-1)

    def _answer(self, reply: Reply | Stream | None, service: Service) -> None:
        if reply is None:
            self._drop()
        elif isinstance(reply, Stream):
            self._send_stream(reply, service)
        else:
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        data = reply.encoded()
        try:
            self.send_response(reply.status)
            if reply.raw is None and reply.body is not None:
                self.send_header("Content-Type", "application/json")
            for key, value in reply.headers.items():
                self.send_header(key, value)
            if "Content-Length" not in reply.headers:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            # The client went away (e.g. its own timeout); nothing left to tell it.
            self.close_connection = True

    def _send_stream(self, stream: Stream, service: Service) -> None:
        """The frames in HTTP chunks, paced on the service's clock; the stream learns how
        it ended (completed, ended in an error event, broken by a fault, or the client
        left).

        How it ends is recorded before its last bytes go out (the last frame, then the
        last chunk or the cut): a client that has read the end and then asks the control
        plane finds it recorded. A client that leaves before the end arrives turns it
        into ``client_gone``."""
        ending = "broken" if stream.cut else stream.outcome
        ended = False
        try:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            for key, value in stream.headers.items():
                self.send_header(key, value)
            self.end_headers()
            *leading, last = stream.frames or [b""]
            for frame in leading:
                service.sleep(stream.interval)
                self._write_chunk(frame)
            if stream.frames:
                service.sleep(stream.interval)
            ended = True
            stream.on_end(ending)
            if stream.frames:
                self._write_chunk(last)
            if stream.cut:
                self._drop()
                return
            self._write_chunk(b"")  # the last chunk: the response is complete
        except OSError:
            ended = True
            stream.on_end("client_gone")
            self.close_connection = True
        finally:
            if not ended:
                stream.on_end(ending)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the connection without a byte of response, like a dead load balancer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def serve_call(service: Service, request: Request) -> Reply | Stream | None:
    """Serve one API call; None means drop the connection."""
    intercepted = service.intercept(request)
    if intercepted is not None:
        return intercepted
    routed = service.route(request.method, request.path)
    if routed is None:
        try:
            return service.unknown_route(request)
        except ServiceError as err:
            return err.reply
    operation, params = routed
    if service.authenticate_first:
        try:
            service.authenticate(request)
        except ServiceError as err:
            return err.reply
    fault = service.begin_call(operation)
    if fault.delay_seconds:
        # Real time, on any clock: a latency fault is there to outlast a client's timeout.
        time.sleep(fault.delay_seconds)  # outside the lock: other calls proceed
    if fault.drop:
        return None
    try:
        if fault.error is not None:
            return service.fault_reply(fault.error, operation)
        if not service.authenticate_first:
            service.authenticate(request)
        reply = service.serve(operation, params, request)
    except ServiceError as err:
        return err.reply
    except Exception:
        log.exception("emulator bug while serving %s %s", request.method, request.path)
        return service.internal_error(operation)
    # A lost answer is one of a call that did something (an error answer changed
    # nothing: it is sent, as the emulators always did).
    if fault.lose_response and (isinstance(reply, Stream) or reply.status < 400):
        service.answer_lost(reply)
        return None
    return reply


def control_plane(service: Service, request: Request) -> Reply:
    """One ``/_emulator/*`` call."""
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


class ServiceServer:
    """An emulated service served from a daemon thread; usable as a context manager."""

    def __init__(
        self,
        service: Service,
        host: str = "127.0.0.1",
        port: int = 0,
        make_account: Callable[[], Service] | None = None,
    ) -> None:
        self.service = service
        #: Builds the service of each ``/accounts/<id>`` (None: no accounts but one).
        self.make_account = make_account
        self.host = host
        self._requested_port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self._requested_port), self.service,
                                  self.make_account)  # fmt: skip
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},  # bounds how long stop() waits
            name=f"{type(self.service).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve(self, service: Service) -> None:
        """Serve ``service`` from now on, on the same port (a test's own service on a
        server its session shares: no server started per test); a call already being
        served ends on the service it began on."""
        self.service = service
        httpd = self._httpd
        if httpd is not None:
            with httpd._accounts_lock:
                httpd.service = service
                httpd.accounts = {}

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("emulator not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        # A wildcard bind is reachable on loopback; clients cannot connect to 0.0.0.0.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host  # noqa: S104
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


def serve_forever(
    service: Service,
    host: str,
    port: int,
    ready: Callable[[str], None] | None = None,
    make_account: Callable[[], Service] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; ``ready(url)`` is called once the socket listens."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    server = ServiceServer(service, host, port, make_account).start()
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
