"""RabbitMQ for tests: a private vhost on the machine's node, or a private node.

* :class:`SharedNode` is the machine's node, driven with the ``rabbitmqctl`` on PATH;
  :class:`RabbitNode` starts a RabbitMQ node of its own (its own name, ports, data, logs
  and Erlang cookie) that a test may SIGKILL and restart without disturbing anyone
  else, and drives it with its own ``rabbitmqctl -n``. :func:`session_node` picks the
  node a test session uses: the shared one when it answers, else a private one.
* :class:`RabbitVhost` creates a vhost on a node, gives the user every permission on it
  and deletes it (with its queues) afterwards, so tests never see each other's messages.
* :class:`RabbitRoles` imports ``deploy/rabbitmq/definitions.json`` into a vhost of its
  own on a node, every user renamed for the run and given a fresh password, and deletes
  those users and the vhost afterwards.

``EVALQ_TEST_RABBITMQ_URL`` names the shared node (default
``amqp://guest:guest@127.0.0.1:5672``); ``EVALQ_TEST_RABBITMQ`` = ``private`` makes a
session start a node of its own even when the shared one answers, ``shared`` never.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from evalq_emulators.processes import ManagedProcess, free_port

SHARED_URL = os.environ.get("EVALQ_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
#: Which node a test session uses: ``shared``, ``private``, or (unset) the shared one
#: when it answers, else a private one.
NODE_CHOICE = os.environ.get("EVALQ_TEST_RABBITMQ", "")
#: The server scripts of a Debian/Ubuntu package (the ones on PATH switch to the rabbitmq
#: user, which cannot read a test's private directories).
_PACKAGE_BIN = Path("/usr/lib/rabbitmq/bin")


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run ``rabbitmqctl`` against the shared node; raises with its output on failure."""
    found = shutil.which("rabbitmqctl")
    if found is None:
        raise RuntimeError("rabbitmqctl not found: install rabbitmq-server (make test does)")
    result = subprocess.run(
        [found, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}")
    return result.stdout


def _server_command(name: str) -> str:
    """A RabbitMQ script: the package's own when it is there, else the one on PATH."""
    packaged = _PACKAGE_BIN / name
    found = str(packaged) if packaged.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} not found: install RabbitMQ (apt-get install rabbitmq-server; "
            "make test does it when it runs as root)"
        )
    return found


def wait_for_port(port: int, timeout: float, process: ManagedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process is not None and not process.alive():
                raise RuntimeError(f"{process.name} exited; see {process.log_path}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port} after {timeout}s") from None
            time.sleep(0.1)


class RabbitServer(Protocol):
    """A node tests make vhosts on: its URL without a vhost, and its ``rabbitmqctl``."""

    @property
    def base_url(self) -> str: ...

    def ctl(self, *args: str, timeout: float = 60) -> str: ...


class SharedNode:
    """The machine's node (``EVALQ_TEST_RABBITMQ_URL``), driven by the ``rabbitmqctl`` on
    PATH (which reaches the machine's node)."""

    def __init__(self, url: str = SHARED_URL) -> None:
        self.base_url = url.rstrip("/")

    def ctl(self, *args: str, timeout: float = 60) -> str:
        return rabbitmqctl(*args, timeout=timeout)

    def answers(self) -> bool:
        """Whether the node listens and ``rabbitmqctl`` can drive it."""
        address = urlsplit(self.base_url)
        try:
            with socket.create_connection((address.hostname or "127.0.0.1",
                                           address.port or 5672), timeout=1):  # fmt: skip
                pass
            self.ctl("-q", "status", timeout=60)
        except (OSError, RuntimeError, subprocess.TimeoutExpired):
            return False
        return True


def session_node(directory: Path) -> tuple[RabbitServer, RabbitNode | None]:
    """The node a test session uses, and the private node it started (the caller stops
    it), if any: the shared node when it answers (or ``EVALQ_TEST_RABBITMQ=shared``),
    else a node of the session's own in ``directory``, as the session starts its own
    redis-server."""
    shared = SharedNode()
    if NODE_CHOICE == "shared" or (NODE_CHOICE != "private" and shared.answers()):
        return shared, None
    node = RabbitNode(directory).start()
    return node, node


class RabbitVhost:
    """A vhost of its own on ``node`` (the shared node by default), deleted with
    everything in it by ``delete``."""

    def __init__(self, node: RabbitServer | None = None, user: str = "guest") -> None:
        self.name = f"evalq-test-{uuid.uuid4().hex[:12]}"
        self.node: RabbitServer = node or SharedNode()
        self.base_url = self.node.base_url
        self.user = user

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.name}"

    def create(self) -> RabbitVhost:
        self.node.ctl("add_vhost", self.name)
        self.node.ctl("set_permissions", "-p", self.name, self.user, ".*", ".*", ".*")
        return self

    def delete(self) -> None:
        self.node.ctl("delete_vhost", self.name)

    def list(self, what: str, *fields: str) -> list[dict[str, str]]:
        """``rabbitmqctl list_<what> -p vhost fields...`` as dicts (queues, consumers)."""
        args = [f"list_{what}", "-p", self.name, "--no-table-headers", "--quiet", *fields]
        rows = self.node.ctl(*args).splitlines()
        return [dict(zip(fields, row.split("\t"), strict=False)) for row in rows if row.strip()]


class RabbitNode:
    """A private RabbitMQ node on free ports, its data under ``directory``; the default
    vhost ``/`` and user ``guest`` are all a test needs."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="evalq-rabbit-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"evalq-{self.port}@localhost"
        for sub in ("mnesia", "log"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        (self.directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "disk_free_limit.absolute = 50MB\n"
        )
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq-env.conf").write_text("")
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def base_url(self) -> str:
        """The node's URL without a vhost (a vhost's URL is ``base_url/<name>``)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n <this node>``, with the node's cookie; raises on failure."""
        argv = [_server_command("rabbitmqctl"), "-n", self.name, *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                check=False, env={**os.environ, **self._env()})  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: "
                               f"{result.stderr or result.stdout}")  # fmt: skip
        return result.stdout

    def _env(self) -> dict[str, str]:
        d = self.directory
        return {
            "HOME": str(d),  # the node's Erlang cookie is created here, not shared
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(d / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def start(self, timeout: float = 90.0) -> RabbitNode:
        argv = [_server_command("rabbitmq-server")]
        self.process = ManagedProcess(
            "rabbitmq", argv, env=self._env(), log_path=self.directory / "node.log"
        ).start()
        try:
            wait_for_port(self.port, timeout, self.process)
        except BaseException:
            self.process.stop()  # nothing outlives a failed start
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the node (and its Erlang helpers): a crash, not a shutdown."""
        if self.process is not None:
            self.process.kill(signal.SIGKILL)
            self.process.stop()

    def restart(self, timeout: float = 90.0) -> None:
        self.kill()
        self.start(timeout)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class RabbitRoles:
    """A definitions file (``deploy/rabbitmq/definitions.json``) imported into a vhost of
    its own on ``node`` (the shared node by default). The vhost and each user get a suffix
    unique to this run (users are node-wide, and other runs share the node) and each user
    a fresh password; ``delete`` removes those users and the vhost, and with it everything
    declared there."""

    def __init__(self, definitions: Path, node: RabbitServer | None = None) -> None:
        self.node: RabbitServer = node or SharedNode()
        suffix = uuid.uuid4().hex[:12]
        self.vhost = f"evalq-roles-{suffix}"
        document = json.loads(definitions.read_text())
        #: The file's user names, each to the name it has on the node for this run.
        self.users = {u["name"]: f"{u['name']}-{suffix}" for u in document["users"]}
        self.passwords = {name: secrets.token_hex(16) for name in self.users}
        self.document = self._renamed(document)
        self.address = urlsplit(self.node.base_url).netloc.rpartition("@")[2]

    def _renamed(self, document: dict[str, Any]) -> dict[str, Any]:
        """The document with this run's vhost, user names and password hashes."""
        document = json.loads(json.dumps(document))
        document["vhosts"] = [{"name": self.vhost}]
        for user in document["users"]:
            user["password_hash"] = password_hash(self.passwords[user["name"]])
            user["hashing_algorithm"] = "rabbit_password_hashing_sha256"
            user["name"] = self.users[user["name"]]
        for permission in document.get("permissions", []):
            permission["user"] = self.users[permission["user"]]
        for kind in ("permissions", "exchanges", "queues", "bindings", "policies"):
            for entry in document.get(kind, []):
                entry["vhost"] = self.vhost
        return document

    def url(self, user: str) -> str:
        """The AMQP URL of ``user`` (named as in the file) in this run's vhost."""
        return f"amqp://{self.users[user]}:{self.passwords[user]}@{self.address}/{self.vhost}"

    def create(self, timeout: float = 60.0) -> RabbitRoles:
        # rabbitmqctl runs as the rabbitmq user, which must be able to read the file.
        directory = Path(tempfile.mkdtemp(prefix="evalq-definitions-"))
        try:
            directory.chmod(0o755)
            path = directory / "definitions.json"
            path.write_text(json.dumps(self.document))
            path.chmod(0o644)
            self.node.ctl("import_definitions", str(path))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        # The import may finish after rabbitmqctl returns: wait for every permission.
        deadline = time.monotonic() + timeout
        while len(self._permissions()) < len(self.document.get("permissions", [])):
            if time.monotonic() > deadline:
                raise TimeoutError(f"definitions not imported into {self.vhost} in {timeout}s")
            time.sleep(0.5)
        return self

    def _permissions(self) -> list[str]:
        try:
            out = self.node.ctl("list_permissions", "-p", self.vhost, "--quiet",
                                "--no-table-headers")  # fmt: skip
        except RuntimeError:
            return []  # the vhost is not there yet
        return [line for line in out.splitlines() if line.strip()]

    def delete(self) -> None:
        """Delete this run's users and vhost; any of them may be missing."""
        for user in self.users.values():
            try:
                self.node.ctl("delete_user", user)
            except RuntimeError as exc:
                if "does not exist" not in str(exc):
                    raise
        try:
            self.node.ctl("delete_vhost", self.vhost)
        except RuntimeError as exc:
            if "does not exist" not in str(exc):
                raise


def password_hash(password: str) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256`` of ``password``: base64 of a 4-byte
    salt and the SHA-256 of the salt and the password."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()
