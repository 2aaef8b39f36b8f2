"""Celery beat's scheduler with a heartbeat: ``evalq health --beat`` sees the loop turn."""

from __future__ import annotations

import socket
from typing import Any

from celery.beat import PersistentScheduler

from worker.runtime.heartbeat import Heartbeat
from worker.settings import get_settings


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    """PersistentScheduler that beats before each of its ticks (at most once an interval;
    ``beat_max_loop_interval`` keeps the loop turning at least that often)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heartbeat = Heartbeat(get_settings(), "beat", socket.gethostname())

    def tick(self, *args: Any, **kwargs: Any) -> float:
        self.heartbeat.beat_if_due()
        return float(super().tick(*args, **kwargs))

    def close(self) -> None:
        self.heartbeat.forget()
        super().close()
