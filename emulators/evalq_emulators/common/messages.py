"""What a JSON emulator's service is handed and answers: one HTTP call, one reply, and the
error a service raises to answer with one (shared by ``server`` and ``service``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        """The last value of query parameter ``name`` (as FastAPI and Stainless read it)."""
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Reply:
    status: int
    #: JSON document, or None for an empty body (204).
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ServiceError(Exception):
    """Raised by a service to answer with ``reply`` (an error status and its envelope)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply
