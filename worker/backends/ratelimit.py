"""Account-wide call rates, shared by every worker process on every host through Redis.

Celery's ``rate_limit`` is per worker, and AgentCore's quotas (3 TPS for start, stop and
delete; 60 TPS for get and list) are per account. A call that may not go now is never
slept on: the caller gets the number of seconds to wait and reschedules its timer.

The algorithm is a sliding log, the ``limits`` library's moving window: a call may go
when fewer than N calls went in the last window. It is one Lua script here
(``scripts/rate_limit.lua``) rather than ``limits`` because the benchmark (4 worker
processes against the emulator's 3 TPS, tests/bench/throttling.py) still got throttled
through ``limits``, for two reasons it cannot express:

* its windows are whole seconds, so the margin that absorbs latency jitter (a call
  counted at t reaches the service at t + latency) could only be added to the wait of a
  refused caller; a caller that came just as the window opened went with no margin;
* each process stamps calls with its own clock, so hosts whose clocks differ would
  share a skewed window. The script reads Redis's clock (``TIME``) instead.
"""

from __future__ import annotations

import math
from typing import Literal

import redis

from worker.keys import TargetKeys
from worker.lua import Script, read_script

#: ``invoke`` is InvokeHarness (scenario runs, docs/scenarios.md).
Operation = Literal["start", "stop", "delete", "get", "list", "invoke"]
#: Every operation with a shared rate.
OPERATIONS: tuple[Operation, ...] = ("start", "stop", "delete", "get", "list", "invoke")


def window_for(per_second: float) -> tuple[int, float]:
    """(calls, seconds) of a sliding window that allows ``per_second`` calls per second:
    3 -> 3 calls per 1 s; 0.5 -> 1 call per 2 s; 2.5 -> 2 calls per 0.8 s."""
    calls = max(1, math.floor(per_second))
    return calls, calls / per_second


class SharedRateLimits:
    """The call rates of one target (one account), shared by every process."""

    def __init__(
        self, client: redis.Redis, rates: dict[Operation, float], keys: TargetKeys, margin: float
    ) -> None:
        """``margin``: every window is this much longer than the quota's (seconds), so that
        calls a few milliseconds apart at our end never land in one window of the remote's."""
        self._script = Script(client, "rate_limit", read_script("worker.backends", "rate_limit"))
        self._windows = {op: window_for(rate) for op, rate in rates.items()}
        self._keys = keys
        self._margin = margin

    def acquire(self, operation: Operation, now: float | None = None) -> float:
        """Take one call of ``operation``: 0.0 when it may go now, else seconds to wait.
        ``now`` replaces Redis's clock (tests)."""
        calls, seconds = self._windows[operation]
        args = {
            "calls": calls,
            "window": seconds + self._margin,
            "now": "" if now is None else repr(now),
        }
        wait = self._script({"log": self._keys.rate_limit(operation)}, args)
        return max(0.0, float(wait))
