"""When to poll a running job next.

A running job's progress is a line of points: sessions done, and when that count last
changed (the remote's ``updatedAt`` when it is plausible, else when we looked). The first
point seen while the job runs is the anchor; the session rate between the anchor and the
latest point projects the job's end, and the next poll lands ``end_margin`` after it.
Past a projected end the gap to the next poll doubles (every session done but the job
not closed yet, or sessions slowing down). With no rate yet, polls back off
exponentially with equal jitter.

Every delay is capped by ``maximum`` and by the job's deadline. So whatever progress said,
a job's end is seen at most ``maximum`` after it happens (plus the timer's own delays, see
docs/throughput.md); a job that ends when its progress said is seen ``end_margin`` after.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.backends.base import RemoteJob, RemoteStatus
from worker.jobs.record import Job, Progress
from worker.settings import Settings


@dataclass(frozen=True)
class PollPolicy:
    initial: float
    maximum: float
    multiplier: float
    minimum: float
    #: How long after the projected end the next poll lands (clock skew, rounding).
    end_margin: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PollPolicy:
        return cls(
            settings.poll_initial,
            settings.poll_max,
            settings.poll_multiplier,
            settings.poll_min,
            settings.poll_end_margin,
        )

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Capped exponential backoff with "equal jitter": never below half the step."""
        step = min(self.maximum, self.initial * self.multiplier ** max(attempt, 0))
        return max(self.minimum, step / 2 + rng.uniform(0, step / 2))

    def next_delay(self, job: Job, now: float, rng: random.Random) -> float:
        end = estimate_end(job)
        delay = self.backoff(job.polls, rng) if end is None else self.delay_to(end, now)
        delay = min(delay, self.maximum)
        return max(self.minimum, min(delay, job.deadline_at - now))

    def delay_to(self, end: float, now: float) -> float:
        """How long until a job projected to end at ``end`` is worth looking at again:
        ``end_margin`` after that end; past it, as long again as it is already late (the
        gap doubles)."""
        if end + self.end_margin > now:
            return end + self.end_margin - now
        return now - end


def track_progress(job: Job, remote: RemoteJob, now: float) -> dict[str, Any]:
    """Record what a poll saw on ``job`` and return the fields to store with it.

    Only a running job's counts are points: a PENDING job's zeros say nothing about its
    pace. The first point is the anchor and stays; the latest replaces the previous one.
    """
    if remote.status != RemoteStatus.IN_PROGRESS:
        return {}
    progress = observed_progress(remote, now)
    if progress is None:
        return {}
    job.progress_last = vars(progress)
    updates: dict[str, Any] = {"progress_last": job.progress_last}
    if job.progress_first is None:
        job.progress_first = job.progress_last
        updates["progress_first"] = job.progress_first
    return updates


def observed_progress(remote: RemoteJob, now: float) -> Progress | None:
    """The remote job's session counts seen at ``now``, with when the remote says they
    last changed (its ``updatedAt``): a poll's and a listing's points alike."""
    progress = Progress.from_counts(remote.counts, now)
    if progress is not None:
        progress.changed_at = _changed_at(remote.body, now)
    return progress


def estimate_end(job: Job) -> float | None:
    """Epoch time at which the session rate seen so far says the job will be done."""
    return projected_end(job.progress_first, job.progress_last)


def projected_end(
    first_point: dict[str, Any] | None, last_point: dict[str, Any] | None
) -> float | None:
    """Epoch time at which the session rate between two progress points (``Progress``
    as stored) says the job will be done; None when they give no rate."""
    if not last_point or not first_point:
        return None
    last = Progress(**last_point)
    first = Progress(**first_point)
    if last.total <= 0:
        return None
    first_at, last_at = _times(first, last)
    if last.done >= last.total:
        return last_at
    finished = last.done - first.done
    elapsed = last_at - first_at
    if finished <= 0 or elapsed <= 0:
        return None
    return last_at + (last.total - last.done) * elapsed / finished


def _times(first: Progress, last: Progress) -> tuple[float, float]:
    """When each count was reached: the remote's change times when both points have one
    and they move forward, else when we saw them (one clock for both, never mixed)."""
    first_changed, last_changed = first.changed_at, last.changed_at
    if first_changed is None or last_changed is None:
        return first.observed_at, last.observed_at
    if last_changed > first_changed or last.done == first.done:
        return first_changed, last_changed
    return first.observed_at, last.observed_at


def _changed_at(body: dict[str, Any], observed_at: float) -> float | None:
    """The remote's ``updatedAt`` as epoch seconds; never after we saw it (clock skew)."""
    value = body.get("updatedAt")
    try:
        if isinstance(value, str):
            at = datetime.fromisoformat(value).timestamp()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            at = float(value)
        else:
            return None
    except ValueError:
        return None
    return min(at, observed_at)
