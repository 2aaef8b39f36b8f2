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


@pytest.fixture
def aymara(clock: Clock) -> Iterator[ServiceServer]:
    service = build_service(
        "aymara", time_scale=10_000.0, api_key=KEY, clock=clock, sleep=clock.sleep
    )
    with ServiceServer(service) as server:
        yield server


@pytest.fixture
def agno(clock: Clock) -> Iterator[ServiceServer]:
    service = build_service(
        "agno", time_scale=10_000.0, security_key=AGNO_KEY, clock=clock, sleep=clock.sleep
    )
    with ServiceServer(service) as server:
        yield server


@pytest.fixture
def with_backends(services, aymara, agno):
    reconfigure(
        services,
        aymara_base_url=aymara.url, aymara_api_key=KEY,
        agno_base_url=agno.url, agno_security_key=AGNO_KEY,
    )  # fmt: skip
    return services
