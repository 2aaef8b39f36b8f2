"""Redis ``WAIT``: a task's job-store writes on enough replicas before it is acknowledged."""

from __future__ import annotations

import time

import redis
import structlog

from worker.settings import Settings

log = structlog.stdlib.get_logger("evalq.replicas")


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
