"""The composition root: the one place that builds evalq's parts from its settings.

Tasks, the consumer's intake guard and the command line all get their ``Services``
from :func:`services`, one per process (rebuilt after a fork: sockets must not be
shared), and every Redis client from :func:`redis_client`.

A Redis restart (or failover) must not turn every in-flight task into an error, so every
client retries connection errors with exponential backoff (redis-py's own ``Retry``) for
about ``Settings.redis_retry_seconds`` before giving up. A ``rediss://`` URL is verified
against ``EVALQ_TLS_*``; with ``EVALQ_REDIS_SENTINELS`` the client asks the sentinels for
the primary (redis-py's ``Sentinel``) on every connection, so after a failover its
retries reach the promoted replica.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable
from typing import Any

import redis
import structlog
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from api_contracts import EvaluationOutcome, EvaluatorUpdateOutcome
from worker import task_names
from worker.backends.base import Backend
from worker.backends.catalog import build_backend
from worker.backends.ratelimit import SharedRateLimits
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.polling import PollPolicy
from worker.jobs.store import JobStore
from worker.jobs.watch import listing_lease
from worker.keys import Keys
from worker.observability.measured import MeasuredBackend
from worker.observability.metrics import RemoteCalls
from worker.producers.policy import Producers
from worker.runtime.connections import redis_tls_options, scheme
from worker.schedules.book import ScheduleBook
from worker.schedules.runner import ScheduleRunner
from worker.schedules.state import ScheduleState
from worker.services import Dispatch, Published, Publisher, Services
from worker.settings import Settings, get_settings
from worker.targets.config import TargetConfig, load_targets
from worker.targets.registry import Target, Targets, rates_of, targets_file_watch

log = structlog.stdlib.get_logger("evalq.root")

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


def wait_for_replicas(settings: Settings, client: redis.Redis) -> None:
    """Block until ``redis_wait_replicas`` replicas hold this process's job-store writes
    (Redis ``WAIT``), so a failover right after a task was acknowledged keeps its writes.
    Replication stays asynchronous: past ``redis_wait_timeout`` the task goes on."""
    wanted = settings.redis_wait_replicas
    if wanted <= 0:
        return
    # WAIT counts the writes of its own connection: a prefork child runs one command at a
    # time, so the pool hands it back the connection that made this task's writes.
    acked = int(client.execute_command("WAIT", wanted, int(settings.redis_wait_timeout * 1000)))
    global _short_of_replicas_logged_at
    now = time.monotonic()
    if acked < wanted and now - _short_of_replicas_logged_at > _SHORT_OF_REPLICAS_LOG_EVERY:
        _short_of_replicas_logged_at = now
        log.warning("job-store writes not on enough replicas", replicas=acked, wanted=wanted)


#: While replicas are missing every task would say so: once a minute per process is enough.
_SHORT_OF_REPLICAS_LOG_EVERY = 60.0
_short_of_replicas_logged_at = -_SHORT_OF_REPLICAS_LOG_EVERY


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
            max_entry_bytes=settings.max_payload_bytes,
        ),
        targets=build_targets(settings, client, keys),
        producers=Producers(settings),
        publisher=publisher,
        dispatch=dispatch,
        dispatch_watch=dispatch_watch,
        dispatch_sync=dispatch_sync,
        dispatch_invoke=dispatch_invoke,
        poll_policy=PollPolicy.from_settings(settings),
        rng=random.Random(os.getpid() ^ int(time.time())),
    )


def build_targets(settings: Settings, client: redis.Redis, keys: Keys) -> Targets:
    """Every configured target, each with its keys, shared rate limits and backend (its
    remote calls counted and timed)."""

    def backend(config: TargetConfig) -> Backend:
        calls = RemoteCalls(client, keys, config.backend.value, config.name)
        return MeasuredBackend(build_backend(settings, config), calls)

    def make(config: TargetConfig) -> Target:
        target_keys = keys.target(config.name)
        limits = SharedRateLimits(client, rates_of(config), target_keys, settings.rate_limit_margin)
        return Target(config, target_keys, limits, backend)

    watch = targets_file_watch(settings) if settings.targets_file else None
    return Targets(load_targets(settings), make, watch)


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


_runner: ScheduleRunner | None = None
_runner_pid: int | None = None


def schedule_runner() -> ScheduleRunner | None:
    """This process's schedules (None without ``EVALQ_SCHEDULES_FILE``), whose file it
    reads again when it changes."""
    global _runner, _runner_pid
    svc = services()
    path = svc.settings.schedules_file
    if path is None:
        return None
    if _runner is None or _runner_pid != os.getpid():
        book = ScheduleBook(path, svc.settings.targets_reload_seconds)
        _runner = ScheduleRunner(svc, book, ScheduleState(svc.redis, svc.keys))
        _runner_pid = os.getpid()
    return _runner


def dispatch_advance(request_id: str, lease_token: float | None, countdown: float) -> None:
    """Send ``evals.advance`` for a job, by name, with at most a short countdown."""
    from worker.runtime.app import app

    app.send_task(
        task_names.ADVANCE,
        args=[request_id],
        kwargs={"lease_token": lease_token},
        countdown=countdown if countdown > 0.001 else None,
    )


def dispatch_watch(target: str) -> None:
    """Send ``evals.watch`` for a target; one nobody ran within its lease is dropped (the
    next tick after the lease sends another)."""
    from worker.runtime.app import app

    app.send_task(task_names.WATCH, args=[target], expires=listing_lease(get_settings()))


def dispatch_sync(request_id: str) -> None:
    """Send ``evals.run`` for a job whose create runs its whole eval (Agno's)."""
    from worker.runtime.app import app

    app.send_task(task_names.RUN, args=[request_id], queue=get_settings().synchronous_queue)


def dispatch_invoke(request_id: str, index: int, attempt: int, countdown: float) -> None:
    """Send ``evals.invoke`` for one scenario item, on the synchronous queue (its stream
    holds a worker process while it lasts); the countdown is a rate limit's short wait."""
    from worker.runtime.app import app

    app.send_task(
        task_names.INVOKE,
        args=[request_id, index, attempt],
        queue=get_settings().synchronous_queue,
        countdown=countdown if countdown > 0.001 else None,
    )


class _CeleryPublisher:
    """Publishes outcomes with the Celery app's producer pool; the app is imported on first
    use, so commands that never publish (status, dlq list) start without it."""

    def publish(
        self, outcome: EvaluationOutcome | EvaluatorUpdateOutcome, queues: Iterable[str]
    ) -> Published:
        from worker.runtime.app import app
        from worker.runtime.connections import queue_arguments
        from worker.runtime.publishing import OutcomePublisher

        settings = get_settings()
        sender = settings.broker_user if settings.broker_is_amqp else None
        publisher = OutcomePublisher(app, queue_arguments(settings), sender)
        return publisher.publish(outcome, queues)
