"""Everything a task needs, built once per worker process (after the fork)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from worker.backends.base import Backend
from worker.dead_letters import DeadLetterStore
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
        return self.backends[name]


def build_services(settings: Settings, *, publisher: Any, dispatch: Dispatch) -> Services:
    from worker.backends.agentcore import AgentCoreBackend

    keys = Keys(settings.key_prefix)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
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
