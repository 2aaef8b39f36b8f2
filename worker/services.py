"""What every job step, janitor sweep and intake call is given: the stores, the remote
backends, the rate limits, the publisher and the dispatcher, and a clock.

This module only says what they are; ``worker.runtime.root`` builds them (the one
composition root), and unit tests build them around fakeredis.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import redis

from api_contracts import EvaluationOutcome, ReasonCode
from worker.backends.base import Backend
from worker.backends.ratelimit import SharedRateLimits
from worker.dead_letters.store import DeadLetterStore
from worker.errors import PermanentError
from worker.jobs.polling import PollPolicy
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.settings import Settings

#: Sends ``evals.advance`` for a job: (request_id, lease token or None, countdown seconds).
Dispatch = Callable[[str, float | None, float], None]


class Publisher(Protocol):
    def publish(self, outcome: EvaluationOutcome, queues: Iterable[str]) -> list[str]:
        """Publish ``outcome`` on every queue; returns the queues it went to."""
        ...


class LazyBackends(Mapping[str, Backend]):
    """The backends a deployment runs, each built on first use: a client is not cheap,
    and processes that never call a backend (the consumer's guard) never build one."""

    def __init__(self, factories: Mapping[str, Callable[[], Backend]]) -> None:
        self._factories = factories
        self._built: dict[str, Backend] = {}

    def __getitem__(self, name: str) -> Backend:
        if name not in self._built:
            self._built[name] = self._factories[name]()
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._factories)

    def __len__(self) -> int:
        return len(self._factories)


@dataclass
class Services:
    settings: Settings
    keys: Keys
    redis: redis.Redis
    store: JobStore
    dead_letters: DeadLetterStore
    rate_limits: SharedRateLimits
    backends: Mapping[str, Backend]
    publisher: Publisher
    dispatch: Dispatch
    poll_policy: PollPolicy
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    def backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            # The contract knows the name but this deployment runs no such backend.
            raise PermanentError(
                f"backend {name!r} is not configured on this worker", ReasonCode.unknown_backend
            ) from None


__all__ = ["Dispatch", "LazyBackends", "Publisher", "Services"]
