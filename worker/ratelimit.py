"""Account-wide call rates, shared by every worker process on every host through Redis.

Celery's ``rate_limit`` is per worker, and AgentCore's quotas (3 TPS for start, stop and
delete; 60 TPS for get and list) are per account. A call that may not go now is never
slept on: the caller gets the number of seconds to wait and reschedules its timer.

The algorithm is a sliding log, the ``limits`` library's moving window: a call may go
when fewer than N calls went in the last window. It is one Lua script here (``lua.
RATE_LIMIT``) rather than ``limits`` because the benchmark (4 worker processes against the
emulator's 3 TPS, tests/bench/throttling.py) still got throttled through ``limits``, for
two reasons it cannot express:

* its windows are whole seconds, so the margin that absorbs latency jitter (a call
  counted at t reaches the service at t + latency) could only be added to the wait of a
  refused caller; a caller that came just as the window opened went with no margin;
* each process stamps calls with its own clock, so hosts whose clocks differ would
  share a skewed window. The script reads Redis's clock (``TIME``) instead.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import redis

from worker import lua
from worker.connections import job_store_client
from worker.keys import Keys
from worker.settings import Settings

Operation = Literal["start", "stop", "delete", "get", "list"]

#: Every window is this much longer than the quota's, so that calls a few milliseconds
#: apart at our end never land inside one window of the remote's.
SAFETY_MARGIN = 0.05


def window_for(per_second: float) -> tuple[int, float]:
    """(calls, seconds) of a sliding window that allows ``per_second`` calls per second:
    3 -> 3 calls per 1 s; 0.5 -> 1 call per 2 s; 2.5 -> 2 calls per 0.8 s."""
    calls = max(1, math.floor(per_second))
    return calls, calls / per_second


class SharedRateLimits:
    def __init__(
        self,
        client: redis.Redis,
        rates: dict[Operation, float],
        namespace: str,
        margin: float = SAFETY_MARGIN,
    ) -> None:
        self._script = client.register_script(lua.RATE_LIMIT)
        self._windows = {op: window_for(rate) for op, rate in rates.items()}
        self._namespace = namespace
        self._margin = margin

    @classmethod
    def from_settings(cls, settings: Settings, keys: Keys) -> SharedRateLimits:
        return cls(
            job_store_client(settings),
            rates_from_settings(settings),
            keys.rate_limit_namespace(),
            settings.rate_limit_margin,
        )

    def acquire(self, operation: Operation, now: float | None = None) -> float:
        """Take one call of ``operation``: 0.0 when it may go now, else seconds to wait.
        ``now`` replaces Redis's clock (tests)."""
        calls, seconds = self._windows[operation]
        args: list[Any] = [calls, seconds + self._margin, "" if now is None else repr(now)]
        wait = self._script(keys=[f"{self._namespace}:{operation}"], args=args)
        return max(0.0, float(wait))


def rates_from_settings(settings: Settings) -> dict[Operation, float]:
    return {
        "start": settings.start_rate,
        "stop": settings.stop_rate,
        "delete": settings.delete_rate,
        "get": settings.get_rate,
        "list": settings.list_rate,
    }
