"""Fixtures of the job tests: the Aymara and Agno emulators in-process on the test's clock,
and services that run them beside AgentCore (their real clients over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evalq_emulators.common import ServiceServer
from evalq_emulators.launch import build_service
from tests.unit.conftest import Clock, reconfigure

KEY = "unit-aymara-key-0123"
AGNO_KEY = "unit-agno-key-4567"


@pytest.fixture(scope="session")
def aymara_server() -> Iterator[ServiceServer]:
    """One server per test process for each service; each test gets a fresh service on it."""
    with ServiceServer(build_service("aymara", api_key=KEY)) as server:
        yield server


@pytest.fixture(scope="session")
def agno_server() -> Iterator[ServiceServer]:
    with ServiceServer(build_service("agno", security_key=AGNO_KEY)) as server:
        yield server


@pytest.fixture
def aymara(aymara_server: ServiceServer, clock: Clock) -> ServiceServer:
    on_clock = {"time_scale": 10_000.0, "clock": clock, "sleep": clock.sleep}
    aymara_server.serve(build_service("aymara", api_key=KEY, **on_clock))
    return aymara_server


@pytest.fixture
def agno(agno_server: ServiceServer, clock: Clock) -> ServiceServer:
    on_clock = {"time_scale": 10_000.0, "clock": clock, "sleep": clock.sleep}
    agno_server.serve(build_service("agno", security_key=AGNO_KEY, **on_clock))
    return agno_server


@pytest.fixture
def with_backends(services, aymara, agno):
    reconfigure(
        services,
        aymara_base_url=aymara.url, aymara_api_key=KEY,
        agno_base_url=agno.url, agno_security_key=AGNO_KEY,
    )  # fmt: skip
    return services
