"""Build one emulated service by name (the command line's ``--service``), ready for
``common.ServiceServer`` or ``common.serve_forever``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .common import FaultConfig, Service

#: The services an emulator can serve (``--service``); the first is the default.
SERVICES = ("agentcore", "aymara", "agno")


def build_service(
    name: str,
    *,
    time_scale: float = 1.0,
    faults: FaultConfig | None = None,
    seed: int | None = None,
    agentcore: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    workspaces: Sequence[str] | None = None,
    organization: bool = True,
    security_key: str | None = None,
    agents: Sequence[str] = ("demo-agent",),
    teams: Sequence[str] = (),
    db_id: str | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Service:
    """The emulator of ``name`` at ``time_scale`` with start-up ``faults``.

    ``agentcore``: more ``EmulatorConfig`` fields (quotas, rates, durations) of the
    AgentCore emulator. ``api_key``, ``workspaces`` and ``organization`` (False: the
    key's organization is missing): Aymara's. ``security_key``,
    ``agents``, ``teams`` and ``db_id``: Agno AgentOS's. ``clock`` and ``sleep``: the
    service's time and how it waits out an emulated duration (a test's manual clock and
    what moves it on: one clock for the test and the emulator, no real waits).
    """
    options: dict[str, Any] = {
        "time_scale": time_scale,
        "faults": faults,
        "seed": seed,
        "clock": clock,
        "sleep": sleep,
    }
    if name == "agentcore":
        from .agentcore import AgentCoreService, EmulatorConfig

        config = EmulatorConfig(time_scale=time_scale, faults=faults or FaultConfig(),
                                seed=seed, **dict(agentcore or {}))  # fmt: skip
        monotonic = time.monotonic if clock is time.time else clock
        return AgentCoreService(config, clock=clock, monotonic=monotonic, sleep=sleep)
    if name == "aymara":
        from .aymara import AymaraService

        service = AymaraService(api_key=api_key, workspaces=workspaces, **options)
        service.organization = organization
        return service
    if name == "agno":
        from .agno import DEFAULT_DB_ID, AgnoService

        return AgnoService(
            security_key=security_key,
            agents=tuple(agents),
            teams=tuple(teams),
            db_id=db_id or DEFAULT_DB_ID,
            **options,
        )
    raise ValueError(f"unknown service {name!r}; have: {', '.join(SERVICES)}")
