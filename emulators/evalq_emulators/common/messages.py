"""What an emulated service is handed and answers: one HTTP call, one reply (a JSON
document, bytes, or an event stream), and the error a service raises to answer with one
(shared by ``server`` and ``service``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    #: Header names in lower case.
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
    #: The body as bytes, sent as they are (``headers`` say their type); ``body`` is
    #: then unused. AgentCore's rest-json answers and STS's XML come this way.
    raw: bytes | None = None

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"" if self.body is None else json.dumps(self.body).encode()


@dataclass(frozen=True)
class Stream:
    """An answer sent as HTTP chunks, one frame per chunk, each after ``interval`` seconds
    of the service's clock (AgentCore's InvokeHarness event stream)."""

    headers: dict[str, str]
    frames: list[bytes]
    interval: float
    #: Called with how the stream ended, before its last bytes go out: ``outcome`` when
    #: every frame goes out and the response is ended, ``broken`` when it is cut,
    #: ``client_gone`` when the client left (again, if it left as the last bytes went
    #: out), ``lost_response`` when a fault lost the answer before it started.
    on_end: Callable[[str], None]
    outcome: str = "completed"
    #: Close the connection after the frames without ending the HTTP response.
    cut: bool = False


class ServiceError(Exception):
    """Raised by a service to answer with ``reply`` (an error status and its envelope)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"HTTP {reply.status}")
        self.reply = reply
