"""Heartbeats of workers and beat: proof that a process's main loop still turns.

Each beat touches a file (what ``evalq health --worker|--beat`` reads in the same
container, without the network) and scores the node in a Redis sorted set (what the
exporter counts as ``evalq_workers``). A worker beats from its consumer's timer, which
runs in the main process's event loop: a hung loop stops the beats, while busy pool
processes do not. Beat beats from its scheduler loop (``worker.runtime.beat``).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import redis
import structlog
from celery import bootsteps

from worker.keys import Keys
from worker.observability.health import heartbeat_path
from worker.runtime.redis_clients import heartbeat_client
from worker.settings import Settings, get_settings

log = structlog.stdlib.get_logger("evalq.heartbeat")

#: Entries of nodes gone this long are dropped from the sorted set.
_FORGET_AFTER = 24 * 3600.0


class Heartbeat:
    def __init__(self, settings: Settings, role: str, node: str) -> None:
        self.path = heartbeat_path(settings.heartbeat_dir, role, node)
        self.member = f"{role}:{node}"
        self.keys = Keys(settings.key_prefix)
        self.client = heartbeat_client(settings)
        self.interval = settings.heartbeat_interval
        self.last = 0.0

    def beat(self) -> None:
        now = time.time()
        self.last = now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.zadd(self.keys.heartbeats, {self.member: now})
            pipe.zremrangebyscore(self.keys.heartbeats, "-inf", now - _FORGET_AFTER)
            pipe.execute()
        except redis.RedisError as exc:
            # The file still proves the loop turns; the exporter misses one beat.
            log.warning("heartbeat not written to Redis", error=str(exc))

    def beat_if_due(self) -> None:
        if time.time() - self.last >= self.interval:
            self.beat()

    def forget(self) -> None:
        """Leave the count at once on a clean stop (the file just goes stale)."""
        with contextlib.suppress(redis.RedisError):
            self.client.zrem(self.keys.heartbeats, self.member)


class WorkerHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consumer step: beat from the consumer's timer while the worker consumes."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.heartbeat: Heartbeat | None = None
        self.timer_ref: Any = None

    def start(self, c: Any) -> None:
        settings = get_settings()
        self.heartbeat = Heartbeat(settings, "worker", c.hostname)
        self.heartbeat.beat()
        self.timer_ref = c.timer.call_repeatedly(
            settings.heartbeat_interval, self.heartbeat.beat, priority=10
        )

    def stop(self, c: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def shutdown(self, c: Any) -> None:
        self.stop(c)
        if self.heartbeat is not None:
            self.heartbeat.forget()
