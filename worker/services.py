"""Everything a task needs, built once per worker process (after the fork)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from api_contracts import ReasonCode
from worker.backends.base import Backend
from worker.connections import job_store_client
from worker.dead_letters import DeadLetterStore
from worker.errors import PermanentError
from worker.keys import Keys
from worker.polling import PollPolicy
from worker.ratelimit import SharedRateLimits
from worker.settings import Settings
from worker.store import JobStore

#: Sends ``evals.advance`` for a job: (request_id, lease token or None, countdown seconds).
Dispatch = Callable[[str, float | None, float], None]


@dataclass
class Services:
    settings: Settings
    keys: Keys
    redis: redis.Redis
    store: JobStore
    dead_letters: DeadLetterStore
    rate_limits: SharedRateLimits
    backends: dict[str, Backend]
    publisher: Any
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


def build_services(settings: Settings, *, publisher: Any, dispatch: Dispatch) -> Services:
    from worker.backends.agentcore import AgentCoreBackend

    keys = Keys(settings.key_prefix)
    client = job_store_client(settings)
    return Services(
        settings=settings,
        keys=keys,
        redis=client,
        store=JobStore(client, keys),
        dead_letters=DeadLetterStore(
            client,
            keys,
            max_entries=settings.dead_letter_max_entries,
            max_age=settings.dead_letter_max_age_seconds,
        ),
        rate_limits=SharedRateLimits.from_settings(settings, keys),
        backends={"agentcore": AgentCoreBackend.from_settings(settings)},
        publisher=publisher,
        dispatch=dispatch,
        poll_policy=PollPolicy.from_settings(settings),
        rng=random.Random(os.getpid() ^ int(time.time())),
    )
