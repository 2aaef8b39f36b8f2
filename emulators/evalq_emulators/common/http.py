"""The HTTP plumbing every emulator shares (AgentCore's and the JSON APIs'): a threaded
server that binds without a reverse-DNS lookup, and a keep-alive handler base."""

from __future__ import annotations

import logging
import socketserver
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # Many workers connect at once in load tests; the default backlog of 5 drops SYNs.
    request_queue_size = 128
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse-DNS getfqdn() that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class KeepAliveHandler(BaseHTTPRequestHandler):
    """Every method goes to ``_handle``, which subclasses write."""

    # HTTP/1.1 so the clients' connection pools can keep connections alive.
    protocol_version = "HTTP/1.1"
    # Close idle keep-alive connections eventually so handler threads do not pile up.
    timeout = 300
    # Headers and body go out in two writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms per call).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _handle(self) -> None:
        raise NotImplementedError
