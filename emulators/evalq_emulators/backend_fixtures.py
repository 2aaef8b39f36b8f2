"""pytest fixtures for the Aymara and Agno backends' real parts, as processes:

* ``aymara_emulator`` / ``agno_emulator``: ``evalq emulator --service aymara|agno`` with a
  test key (``AYMARA_TEST_KEY``, ``AGNO_TEST_KEY``), at time scale 50; the factory
  ``json_emulator_factory("aymara", *options)`` starts one with other options.
* ``fake_model_server``: the OpenAI-compatible fake model (``evalq_emulators.fake_openai``).
* ``agentos_server``: the real Agno AgentOS (``evalq_emulators.agentos``) on a fresh SQLite
  file, its agents and teams on the fake model, keyed with ``AGNO_TEST_KEY``; one per
  session (it takes seconds to start), so tests name their runs rather than count them.

Load with ``pytest_plugins = ["evalq_emulators.backend_fixtures"]`` (next to
``evalq_emulators.pytest_plugin``, whose ``Emulator`` handle these fixtures return).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from evalq_emulators.processes import ManagedProcess, evalq_command, free_port, wait_for_line
from evalq_emulators.pytest_plugin import Emulator

AYMARA_TEST_KEY: Final = "aymara-test-key-7f3c21"
AGNO_TEST_KEY: Final = "agno-test-key-5d9e04"
AGNO_AGENTS: Final = ("demo-agent", "other-agent")
AGNO_TEAMS: Final = ("support-team",)
#: Both the emulator and the real AgentOS serve this database id.
AGNO_DB_ID: Final = "agentos-db"
#: Time scale of the default emulators: a 10-response Aymara run scores in about a second.
TIME_SCALE: Final = "50"


@dataclass
class ServerProcess:
    """A server started for tests: where it listens and its process."""

    url: str
    process: ManagedProcess


@dataclass
class AgentOSServer(ServerProcess):
    """The real AgentOS; ``request`` sends one call with its key (or ``key=``)."""

    security_key: str
    model: ServerProcess

    def request(
        self, method: str, path: str, body: Any = None, *, key: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key or self.security_key}"}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        call = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(call, timeout=120) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None


def _start(name: str, argv: list[str], log: Path, ready: str, timeout: float) -> ManagedProcess:
    process = ManagedProcess(name, argv, log_path=log).start()
    try:
        wait_for_line(log, ready, timeout, process)
    except Exception:
        process.stop()
        raise
    return process


def start_json_emulator(service: str, directory: Path, *options: str) -> Emulator:
    """``evalq emulator --service SERVICE *options`` on a free port, its log in
    ``directory``; the caller stops ``.process``."""
    port = free_port()
    argv = evalq_command("emulator", "--service", service, "--port", str(port), *options)
    log = directory / f"{service}-emulator-{port}.log"
    process = _start(f"{service}-emulator", argv, log, "emulator listening on", 30)
    return Emulator(f"http://127.0.0.1:{port}", process)


#: The options of the default emulators.
AYMARA_OPTIONS: Final = ("--api-key", AYMARA_TEST_KEY, "--time-scale", TIME_SCALE)
AGNO_OPTIONS: Final = (
    "--security-key", AGNO_TEST_KEY, "--time-scale", TIME_SCALE,
    "--agents", ",".join(AGNO_AGENTS), "--teams", ",".join(AGNO_TEAMS), "--db-id", AGNO_DB_ID,
)  # fmt: skip


@pytest.fixture
def json_emulator_factory(tmp_path: Path) -> Iterator[Any]:
    """``start(service, *options)``: an ``evalq emulator --service SERVICE`` process."""
    started: list[Emulator] = []

    def start(service: str, *options: str) -> Emulator:
        emulator = start_json_emulator(service, tmp_path, *options)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.process.stop()


@pytest.fixture
def aymara_emulator(json_emulator_factory: Any) -> Emulator:
    emulator: Emulator = json_emulator_factory("aymara", *AYMARA_OPTIONS)
    return emulator


@pytest.fixture
def agno_emulator(json_emulator_factory: Any) -> Emulator:
    emulator: Emulator = json_emulator_factory("agno", *AGNO_OPTIONS)
    return emulator


@pytest.fixture(scope="session")
def fake_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("fake-model")
    port = free_port()
    argv = [sys.executable, "-m", "evalq_emulators.fake_openai", "--port", str(port)]
    process = _start("fake-model", argv, directory / "fake-model.log", "listening on", 30)
    yield ServerProcess(f"http://127.0.0.1:{port}/v1", process)
    process.stop()


@pytest.fixture(scope="session")
def agentos_server(
    tmp_path_factory: pytest.TempPathFactory, fake_model_server: ServerProcess
) -> Iterator[AgentOSServer]:
    directory = tmp_path_factory.mktemp("agentos")
    port = free_port()
    argv = [
        sys.executable, "-m", "evalq_emulators.agentos", "--port", str(port),
        "--model-url", fake_model_server.url, "--db-file", str(directory / "agentos.db"),
        "--db-id", AGNO_DB_ID, "--agents", ",".join(AGNO_AGENTS),
        "--teams", ",".join(AGNO_TEAMS), "--security-key", AGNO_TEST_KEY,
    ]  # fmt: skip
    process = _start("agentos", argv, directory / "agentos.log", "agentos listening on", 120)
    yield AgentOSServer(
        f"http://127.0.0.1:{port}", process, security_key=AGNO_TEST_KEY, model=fake_model_server
    )
    process.stop()
