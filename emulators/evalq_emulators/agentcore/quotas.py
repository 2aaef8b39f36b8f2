"""Per-operation request-rate limits over a sliding one-second window (real time)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from time import monotonic

WINDOW_SECONDS = 1.0


class SlidingWindowLimiter:
    """At most `limit` accepted calls in any window of one real second.

    Not locked itself: the emulator state calls it under its own lock.
    """

    def __init__(self, limit: float, clock: Callable[[], float] = monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._accepted: deque[float] = deque()

    def try_acquire(self) -> bool:
        """Record and accept the call if the window has room; rejected calls are not recorded."""
        now = self._clock()
        while self._accepted and now - self._accepted[0] >= WINDOW_SECONDS:
            self._accepted.popleft()
        if len(self._accepted) + 1 > self.limit:
            return False
        self._accepted.append(now)
        return True

    def reset(self) -> None:
        self._accepted.clear()


class RateLimits:
    """One limiter per operation: mutations share one TPS setting, reads another,
    InvokeHarness has its own."""

    MUTATING = (
        "StartBatchEvaluation",
        "StopBatchEvaluation",
        "DeleteBatchEvaluation",
        "CreateEvaluator",
        "UpdateEvaluator",
        "DeleteEvaluator",
        "CreateOnlineEvaluationConfig",
        "UpdateOnlineEvaluationConfig",
        "DeleteOnlineEvaluationConfig",
    )
    READING = (
        "GetBatchEvaluation",
        "ListBatchEvaluations",
        "GetEvaluator",
        "ListEvaluators",
        "GetOnlineEvaluationConfig",
        "ListOnlineEvaluationConfigs",
    )

    def __init__(
        self,
        mutate_tps: float,
        read_tps: float,
        clock: Callable[[], float] = monotonic,
        harness_tps: float = 100.0,
    ) -> None:
        self._limiters = {op: SlidingWindowLimiter(mutate_tps, clock) for op in self.MUTATING}
        self._limiters.update({op: SlidingWindowLimiter(read_tps, clock) for op in self.READING})
        self._limiters["InvokeHarness"] = SlidingWindowLimiter(harness_tps, clock)

    def allow(self, operation: str) -> bool:
        limiter = self._limiters.get(operation)
        return limiter is None or limiter.try_acquire()

    def reset(self) -> None:
        for limiter in self._limiters.values():
            limiter.reset()
