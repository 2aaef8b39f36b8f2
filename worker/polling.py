"""When to poll a running job next.

From the session counts seen so far the policy estimates when the job will end and polls
just after that; with no progress to go by it falls back to capped exponential backoff
with jitter. Every delay is capped by ``maximum`` (so detection is never later than that
after the remote end) and by the job's deadline (so the deadline is acted on in time).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from worker.jobs import Job, Progress
from worker.settings import Settings


@dataclass(frozen=True)
class PollPolicy:
    initial: float
    maximum: float
    multiplier: float
    minimum: float

    @classmethod
    def from_settings(cls, settings: Settings) -> PollPolicy:
        return cls(
            settings.poll_initial, settings.poll_max, settings.poll_multiplier, settings.poll_min
        )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Capped exponential backoff with "equal jitter": never below half the step."""
        step = min(self.maximum, self.initial * self.multiplier ** max(attempt, 0))
        return max(self.minimum, step / 2 + rng.uniform(0, step / 2))

    def next_delay(self, job: Job, now: float, rng: random.Random) -> float:
        end = estimate_end(job)
        if end is not None and end - now > self.minimum:
            delay = end - now
        else:
            delay = self.backoff(job.polls, rng)
        delay = min(delay, self.maximum)
        return max(self.minimum, min(delay, job.deadline_at - now))


def estimate_end(job: Job) -> float | None:
    """Epoch time at which the sessions seen so far say the job will be done."""
    if not job.progress_last:
        return None
    last = Progress(**job.progress_last)
    first = Progress(**job.progress_first) if job.progress_first else None
    if first is None or first.observed_at >= last.observed_at:
        if job.started_at is None:
            return None
        first = Progress(completed=0, total=last.total, observed_at=job.started_at)
    finished = last.done - first.done
    elapsed = last.observed_at - first.observed_at
    if finished <= 0 or elapsed <= 0:
        return None
    rate = finished / elapsed
    return last.observed_at + (last.total - last.done) / rate
