"""``evalq health [--worker|--beat] [--max-tick-age S]``: exit 0 when healthy, 1 when not.

Kubernetes runs it as an exec probe every few seconds in every pod, so it must cost far
less than 0.1 CPU-second: the console entry (``worker.cli.entry``) dispatches here before
importing anything else, and this module imports only the standard library. That is why
it reads its settings from the environment itself (a unit test holds the names and
defaults equal to ``worker.settings.Settings``) and speaks the few Redis commands it
needs over a socket: importing redis-py alone costs about 70 ms of CPU (it pulls in
asyncio), pydantic-settings about 100 ms, the whole CLI about 250 ms.

Checks: the job store answers PING; the broker answers (Redis: PING; AMQP: the protocol
header); with ``--worker``/``--beat``, this node's heartbeat file is fresh (the main loop
turns: ``worker.runtime.heartbeat``); with ``--max-tick-age`` (and by default without a
role) the last ``evals.tick`` ended at most that long ago.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: The settings this check reads, with ``worker.settings.Settings``' defaults.
DEFAULTS = {
    "redis_url": "redis://127.0.0.1:6379/1",
    "broker_url": "redis://127.0.0.1:6379/0",
    "key_prefix": "evalq",
    "heartbeat_interval": "5.0",
    "heartbeat_dir": "",  # tempfile.gettempdir()
    # TLS for rediss:// and amqps:// (unset: the system's CAs, no client certificate).
    "tls_ca_file": "",
    "tls_cert_file": "",
    "tls_key_file": "",
}
#: A heartbeat is stale after this many intervals.
STALE_INTERVALS = 4
#: Without a role, the last tick must be at most this old (seconds).
DEFAULT_MAX_TICK_AGE = 30.0
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def heartbeat_path(directory: Path | str, role: str, node: str) -> Path:
    """The heartbeat file of one node (shared with ``worker.runtime.heartbeat``)."""
    safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", node)
    return Path(directory or _tempdir()) / f"evalq-{role}-{safe}.heartbeat"


def default_node(role: str) -> str:
    """The node name evalq gives itself: ``evalq@<host>`` for a worker (``evalq worker``
    passes ``--hostname evalq@%h``), the host name for beat."""
    host = socket.gethostname()
    return f"evalq@{host}" if role == "worker" else host


def setting(name: str) -> str:
    """An ``EVALQ_*`` setting as pydantic-settings reads it (names are case-insensitive)."""
    wanted = f"EVALQ_{name}".upper()
    for key, value in os.environ.items():
        if key.upper() == wanted:
            return value
    return DEFAULTS[name]


class RespClient:
    """The handful of Redis commands a probe needs (RESP2, AUTH, SELECT, TLS)."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parts.path)
            db = query.get("db", ["0"])[0]
        else:
            host = parts.hostname or "127.0.0.1"
            sock = socket.create_connection((host, parts.port or 6379), timeout)
            db = parts.path.lstrip("/") or query.get("db", ["0"])[0]
            if parts.scheme == "rediss":
                sock = _tls(sock, host, query)
        self._sock = sock
        self._file = sock.makefile("rb")
        if parts.password is not None:
            user = [unquote(parts.username)] if parts.username else []
            self.call("AUTH", *user, unquote(parts.password))
        if db not in ("", "0"):
            self.call("SELECT", db)

    def call(self, *args: str) -> Any:
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self._sock.sendall(b"".join(parts))
        return self._reply()

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def _reply(self) -> Any:
        line = self._file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise ConnectionError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._file.read(size + 2)[:-2].decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise ConnectionError(f"unexpected reply {line[:20]!r}")


def _tls(sock: socket.socket, host: str, query: dict[str, list[str]]) -> socket.socket:
    """TLS as evalq's own clients speak it: the URL's options, else EVALQ_TLS_* (a
    private CA, a client certificate the server asks for)."""
    import ssl  # only for rediss:// and amqps://

    cafile = query.get("ssl_ca_certs", [setting("tls_ca_file")])[0] or None
    context = ssl.create_default_context(cafile=cafile)
    cert = query.get("ssl_certfile", [setting("tls_cert_file")])[0]
    key = query.get("ssl_keyfile", [setting("tls_key_file")])[0]
    if cert:
        context.load_cert_chain(cert, key or None)
    if query.get("ssl_cert_reqs", ["required"])[0].lower() in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock, server_hostname=host)


def _tempdir() -> str:
    import tempfile

    return tempfile.gettempdir()


# -- checks (each returns None when healthy, else what is wrong) -----------------------------
def check_redis(url: str, timeout: float) -> str | None:
    try:
        client = RespClient(url, timeout)
        try:
            return None if client.call("PING") == "PONG" else "no PONG"
        finally:
            client.close()
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"


def check_broker(url: str, timeout: float) -> str | None:
    scheme = urlsplit(url).scheme
    if scheme.startswith("redis") or scheme == "unix":
        return check_redis(url, timeout)
    if scheme in ("amqp", "amqps", "pyamqp"):
        return _check_amqp(url, timeout)
    return f"cannot check a {scheme!r} broker"


def _check_amqp(url: str, timeout: float) -> str | None:
    parts = urlsplit(url)
    tls = parts.scheme == "amqps"
    try:
        sock = socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or (5671 if tls else 5672)), timeout
        )
        with sock:
            if tls:
                sock = _tls(sock, parts.hostname or "127.0.0.1", parse_qs(parts.query))
            sock.sendall(_AMQP_HEADER)
            # A broker answers the header with a Connection.Start method frame (type 1).
            return None if sock.recv(1) == b"\x01" else "not an AMQP 0-9-1 broker"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def check_tick(url: str, prefix: str, max_age: float, timeout: float) -> str | None:
    try:
        client = RespClient(url, timeout)
        try:
            last = client.call("GET", f"{prefix}:last-tick")
        finally:
            client.close()
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if last is None:
        return "no tick has run yet"
    age = time.time() - float(last)
    return None if age <= max_age else f"last tick {age:.1f}s ago (max {max_age:g}s)"


def check_heartbeat(path: Path, max_age: float) -> str | None:
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return f"no heartbeat file {path}"
    return None if age <= max_age else f"heartbeat {age:.1f}s old (max {max_age:g}s): {path}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="evalq health",
        description="Exit 0 if this evalq node and what it needs are healthy, else 1.",
    )
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--worker", action="store_true", help="check this worker's heartbeat")
    role.add_argument("--beat", action="store_true", help="check beat's heartbeat")
    parser.add_argument("--node", help="node name (default: evalq@<host>, or <host> for beat)")
    parser.add_argument(
        "--max-tick-age", type=float, metavar="S",
        help=f"fail if no tick ended in the last S seconds (0: do not check; default "
        f"{DEFAULT_MAX_TICK_AGE:g} without a role, unchecked with one)",
    )  # fmt: skip
    parser.add_argument("--max-heartbeat-age", type=float, metavar="S",
                        help=f"default {STALE_INTERVALS} x EVALQ_HEARTBEAT_INTERVAL")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=2.0, help="per connection (s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    args = parser.parse_args(argv)

    redis_url, timeout = setting("redis_url"), args.timeout
    checks: list[tuple[str, str | None]] = [
        ("job store", check_redis(redis_url, timeout)),
        ("broker", check_broker(setting("broker_url"), timeout)),
    ]
    which = "worker" if args.worker else "beat" if args.beat else None
    if which is not None:
        interval = float(setting("heartbeat_interval"))
        path = heartbeat_path(setting("heartbeat_dir"), which, args.node or default_node(which))
        max_age = args.max_heartbeat_age or STALE_INTERVALS * interval
        checks.append((f"{which} heartbeat", check_heartbeat(path, max_age)))
    max_tick_age = args.max_tick_age
    if max_tick_age is None and which is None:
        max_tick_age = DEFAULT_MAX_TICK_AGE
    if max_tick_age:
        checks.append(("tick", check_tick(redis_url, setting("key_prefix"), max_tick_age,
                                          timeout)))  # fmt: skip
    failed = [(name, problem) for name, problem in checks if problem is not None]
    for name, problem in checks:
        if problem is not None:
            print(f"FAIL {name}: {problem}", file=sys.stderr)
        elif not args.quiet:
            print(f"ok   {name}")
    return 1 if failed else 0
