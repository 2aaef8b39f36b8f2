"""The composition root: the one place that builds evalq's parts from its settings.

Tasks, the consumer's intake guard and the command line all get their ``Services``
from :func:`services`, one per process (rebuilt after a fork: sockets must not be
shared), and every Redis client from :func:`redis_client`.

A Redis restart (or failover) must not turn every in-flight task into an error, so every
client retries connection errors with exponential backoff (redis-py's own ``Retry``) for
about ``Settings.redis_retry_seconds`` before giving up.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from api_contracts import EvaluationOutcome
from worker import task_names
from worker.backends.base import Backend
from worker.backends.ratelimit import SharedRateLimits, rates_from_settings
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.polling import PollPolicy
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.observability.metrics import RemoteCalls
from worker.services import Dispatch, LazyBackends, Publisher, Services
from worker.settings import Settings, get_settings

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


def redis_client(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client of the job store (or of the Redis at ``url``: the broker, for the
    exporter); replies decoded as text, retrying through restarts."""
    return redis.Redis.from_url(
        url or settings.redis_url, decode_responses=True, **retry_options(settings)
    )


def heartbeat_client(settings: Settings) -> redis.Redis:
    """A client for heartbeats, which run in a worker's event loop: it never retries and
    gives up within a second, so a Redis outage cannot stall the loop."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE), 0),
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
    )


def build_services(
    settings: Settings,
    *,
    publisher: Publisher,
    dispatch: Dispatch,
    client: redis.Redis | None = None,
) -> Services:
    keys = Keys(settings.key_prefix)
    client = client if client is not None else redis_client(settings)
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
        rate_limits=SharedRateLimits(
            client, rates_from_settings(settings), keys, settings.rate_limit_margin
        ),
        backends=LazyBackends(
            {"agentcore": lambda: _agentcore(settings, RemoteCalls(client, keys, "agentcore"))}
        ),
        publisher=publisher,
        dispatch=dispatch,
        poll_policy=PollPolicy.from_settings(settings),
        rng=random.Random(os.getpid() ^ int(time.time())),
    )


def _agentcore(settings: Settings, calls: RemoteCalls) -> Backend:
    # Imported on first use: boto3 costs a process ~15 MB, and the consumer's main
    # process (the guard) never calls a backend.
    from worker.backends.agentcore import AgentCoreBackend

    return AgentCoreBackend.from_settings(settings, calls)


_services: Services | None = None
_services_pid: int | None = None


def services() -> Services:
    """This process's services, built on first use from ``EVALQ_*`` settings."""
    global _services, _services_pid
    if _services is None or _services_pid != os.getpid():
        _services = build_services(
            get_settings(), publisher=_CeleryPublisher(), dispatch=dispatch_advance
        )
        _services_pid = os.getpid()
    return _services


def dispatch_advance(request_id: str, lease_token: float | None, countdown: float) -> None:
    """Send ``evals.advance`` for a job, by name, with at most a short countdown."""
    from worker.runtime.app import app

    app.send_task(
        task_names.ADVANCE,
        args=[request_id],
        kwargs={"lease_token": lease_token},
        countdown=countdown if countdown > 0.001 else None,
    )


class _CeleryPublisher:
    """Publishes outcomes with the Celery app's producer pool; the app is imported on first
    use, so commands that never publish (status, dlq list) start without it."""

    def publish(self, outcome: EvaluationOutcome, queues: Iterable[str]) -> list[str]:
        from worker.runtime.app import app
        from worker.runtime.publishing import OutcomePublisher

        return OutcomePublisher(app).publish(outcome, queues)
