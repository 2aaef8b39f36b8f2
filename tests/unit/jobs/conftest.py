"""Fixtures of the job tests: the Aymara and Agno emulators in-process, and services
that run them beside AgentCore (their real clients over HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.conftest import reconfigure
from worker.testing.emulator.common import JsonApiServer
from worker.testing.emulator.launch import build_service

KEY = "unit-aymara-key-0123"
AGNO_KEY = "unit-agno-key-4567"


@pytest.fixture
def aymara() -> Iterator[JsonApiServer]:
    with JsonApiServer(build_service("aymara", time_scale=10_000.0, api_key=KEY)) as server:
        yield server


@pytest.fixture
def agno() -> Iterator[JsonApiServer]:
    service = build_service("agno", time_scale=10_000.0, security_key=AGNO_KEY)
    with JsonApiServer(service) as server:
        yield server


@pytest.fixture
def with_backends(services, aymara, agno):
    reconfigure(
        services,
        aymara_base_url=aymara.url, aymara_api_key=KEY,
        agno_base_url=agno.url, agno_security_key=AGNO_KEY,
    )  # fmt: skip
    return services
