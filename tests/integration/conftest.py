"""Fixtures shared by the emulator's contract tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evalq_emulators.agentcore import EmulatorConfig, EmulatorServer

from .test_emulator_contract import FAST


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., EmulatorServer]]:
    """In-process emulators on free ports (fast clocks and rates unless overridden)."""
    servers: list[EmulatorServer] = []

    def factory(**overrides: Any) -> EmulatorServer:
        server = EmulatorServer(EmulatorConfig(**{**FAST, **overrides})).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
