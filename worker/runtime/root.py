"""The composition root: the one place that builds evalq's parts from its settings.

Tasks, the consumer's intake guard and the command line all get their ``Services``
from :func:`services`, one per process (rebuilt after a fork: sockets must not be
shared). Its Redis clients come from ``worker.runtime.redis_clients``, the messages
its steps send from ``worker.runtime.dispatch``, its publisher from
``worker.runtime.outcome_publisher``.
"""

from __future__ import annotations

import os
import random
import time

import redis

from worker.backends.base import Backend
from worker.backends.catalog import build_backend
from worker.backends.measured import MeasuredBackend
from worker.backends.ratelimit import SharedRateLimits
from worker.backends.registry import Target, Targets, rates_of, targets_file_watch
from worker.dead_letters.store import DeadLetterStore
from worker.jobs.polling import PollPolicy
from worker.jobs.services import Dispatch, Publisher, Services
from worker.jobs.store import JobStore
from worker.keys import Keys
from worker.observability.metrics import RemoteCalls
from worker.producers.policy import Producers
from worker.runtime.dispatch import dispatch_advance, dispatch_invoke, dispatch_sync, dispatch_watch
from worker.runtime.outcome_publisher import CeleryPublisher
from worker.runtime.redis_clients import redis_client
from worker.schedules.book import ScheduleBook
from worker.schedules.runner import ScheduleRunner
from worker.schedules.state import ScheduleState
from worker.settings import Settings, get_settings
from worker.targets.config import TargetConfig, load_targets


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
            get_settings(), publisher=CeleryPublisher(), dispatch=dispatch_advance
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
