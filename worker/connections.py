"""Redis clients for the job store, built in one place.

A Redis restart (or failover) must not turn every in-flight task into an error, so every
client retries connection errors with exponential backoff (redis-py's own ``Retry``) for
about ``Settings.redis_retry_seconds`` before giving up.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.settings import Settings

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 1.0


def retry_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` that ride out a short outage."""
    # 0.05 + 0.1 + ... + 0.8, then 1 s per retry until the budget is spent.
    retries = 5 + max(0, int(settings.redis_retry_seconds - 1.55))
    return {
        "retry": Retry(ExponentialBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE), retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "socket_connect_timeout": 2.0,
        "socket_timeout": 10.0,
        "health_check_interval": 30,
    }


def job_store_client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url, decode_responses=True, **retry_options(settings)
    )
