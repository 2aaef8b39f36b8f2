"""Build and serve one of the JSON emulators (Aymara, Agno) from command-line options;
``evalq emulator --service aymara|agno`` calls :func:`serve_json_emulator`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .agentcore.config import FaultConfig
from .common import JsonService, serve_forever

#: The services ``--service`` may name besides ``agentcore``.
JSON_SERVICES = ("aymara", "agno")


def build_service(
    name: str,
    *,
    time_scale: float = 1.0,
    faults: FaultConfig | None = None,
    seed: int | None = None,
    api_key: str | None = None,
    workspaces: Sequence[str] | None = None,
    security_key: str | None = None,
    agents: Sequence[str] = ("demo-agent",),
    teams: Sequence[str] = (),
    db_id: str | None = None,
) -> JsonService:
    options: dict[str, Any] = {"time_scale": time_scale, "faults": faults, "seed": seed}
    if name == "aymara":
        from .aymara import AymaraService

        return AymaraService(api_key=api_key, workspaces=workspaces, **options)
    if name == "agno":
        from .agno import DEFAULT_DB_ID, AgnoService

        return AgnoService(
            security_key=security_key,
            agents=tuple(agents),
            teams=tuple(teams),
            db_id=db_id or DEFAULT_DB_ID,
            **options,
        )
    raise ValueError(f"unknown service {name!r}; have: agentcore, {', '.join(JSON_SERVICES)}")


def serve_json_emulator(
    name: str, host: str, port: int, ready: Callable[[str], None], **options: Any
) -> None:
    """Serve the emulator of ``name`` until SIGTERM/SIGINT."""
    serve_forever(build_service(name, **options), host, port, ready)
