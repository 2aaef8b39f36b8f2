"""Account-wide call rates, shared by every worker process on every host through Redis.

Celery's ``rate_limit`` is per worker, and AgentCore's quotas (3 TPS for start, stop and
delete; 60 TPS for get and list) are per account. A call that may not go now is never
slept on: the caller gets the number of seconds to wait and reschedules its timer.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from worker.connections import retry_options
from worker.keys import Keys
from worker.settings import Settings

Operation = Literal["start", "stop", "delete", "get", "list"]

#: Added to the wait so that the next call lands clearly outside the remote's window
#: even when request latencies differ by a few milliseconds.
SAFETY_MARGIN = 0.05


def rate_item(per_second: float) -> RateLimitItem:
    """N calls per second; rates below one become one call per ceil(1/rate) seconds."""
    if per_second >= 1:
        return RateLimitItemPerSecond(math.floor(per_second))
    return RateLimitItemPerSecond(1, multiples=math.ceil(1 / per_second))


class SharedRateLimits:
    def __init__(self, storage: Storage, rates: dict[Operation, float], namespace: str) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self._items = {op: rate_item(rate) for op, rate in rates.items()}
        self._namespace = namespace

    @classmethod
    def from_settings(cls, settings: Settings, keys: Keys) -> SharedRateLimits:
        storage = RedisStorage(
            settings.redis_url, key_prefix=keys.rate_limit_namespace(), **retry_options(settings)
        )
        return cls(storage, rates_from_settings(settings), keys.rate_limit_namespace())

    def acquire(self, operation: Operation) -> float:
        """Take one call of ``operation``: 0.0 when it may go now, else seconds to wait."""
        item = self._items[operation]
        if self._limiter.hit(item, self._namespace, operation):
            return 0.0
        stats = self._limiter.get_window_stats(item, self._namespace, operation)
        return max(0.0, stats.reset_time - time.time()) + SAFETY_MARGIN


def rates_from_settings(settings: Settings) -> dict[Operation, float]:
    return {
        "start": settings.start_rate,
        "stop": settings.stop_rate,
        "delete": settings.delete_rate,
        "get": settings.get_rate,
        "list": settings.list_rate,
    }
