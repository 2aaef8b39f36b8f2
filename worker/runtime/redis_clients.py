"""Every Redis client of evalq's processes (the job store; the broker, for the exporter).

A Redis restart (or failover) must not turn every in-flight task into an error, so every
client retries connection errors with exponential backoff (redis-py's own ``Retry``) for
about ``Settings.redis_retry_seconds`` before giving up. A ``rediss://`` URL is verified
against ``EVALQ_TLS_*``; with ``EVALQ_REDIS_SENTINELS`` the client asks the sentinels for
the primary (redis-py's ``Sentinel``) on every connection, so after a failover its
retries reach the promoted replica.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from worker.runtime.connections import redis_tls_options, scheme
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


def redis_client(settings: Settings, url: str | None = None, **overrides: Any) -> redis.Redis:
    """A client of the job store (or of the Redis at ``url``: the broker, for the
    exporter); replies decoded as text, retrying through restarts. ``overrides`` replace
    the connection options (timeouts, retries)."""
    url = url or settings.redis_url
    options = {"decode_responses": True, **retry_options(settings), **overrides}
    tls = scheme(url) == "rediss"
    if tls:
        options.update(redis_tls_options(settings))
    sentinels = settings.sentinel_addresses()
    if not sentinels:
        return redis.Redis.from_url(url, **options)
    # The URL keeps its credentials and db number; the sentinels name the host.
    target = parse_url(url)
    for key in ("host", "port", "connection_class"):
        target.pop(key, None)
    sentinel = Sentinel(
        sentinels,
        socket_connect_timeout=options["socket_connect_timeout"],
        socket_timeout=options["socket_connect_timeout"],
    )
    master = str(settings.redis_sentinel_master)
    client: redis.Redis = sentinel.master_for(master, ssl=tls, **target, **options)
    return client


def heartbeat_client(settings: Settings) -> redis.Redis:
    """A client for heartbeats, which run in a worker's event loop: it never retries and
    gives up within a second, so a Redis outage cannot stall the loop."""
    return redis_client(
        settings,
        retry=Retry(ExponentialBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE), 0),
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
    )
