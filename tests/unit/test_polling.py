from __future__ import annotations

import random

import pytest

from worker.jobs import Job
from worker.polling import PollPolicy, estimate_end
from worker.states import JobState

POLICY = PollPolicy(initial=2.0, maximum=60.0, multiplier=2.0, minimum=0.5)


def _job(**values) -> Job:
    base = dict(request_id="r", state=JobState.RUNNING, request={}, payload_hash="h",
                producer="p", backend="agentcore", accepted_at=0.0, deadline_at=10_000.0,
                retention_seconds=0.0, started_at=0.0)  # fmt: skip
    return Job(**{**base, **values})


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_stays_between_half_step_and_step_and_is_capped(attempt):
    step = min(60.0, 2.0 * 2**attempt)
    for seed in range(20):
        delay = POLICY.backoff(attempt, random.Random(seed))
        assert step / 2 <= delay <= step


def test_end_is_estimated_from_the_session_rate():
    job = _job(
        progress_first={"completed": 2, "total": 10, "failed": 0, "observed_at": 100.0},
        progress_last={"completed": 6, "total": 10, "failed": 0, "observed_at": 140.0},
    )
    assert estimate_end(job) == pytest.approx(180.0)


def test_single_observation_uses_the_start_time():
    job = _job(
        started_at=100.0,
        progress_last={"completed": 5, "total": 10, "failed": 0, "observed_at": 150.0},
    )
    assert estimate_end(job) == pytest.approx(200.0)


def test_no_progress_means_no_estimate_and_backoff():
    job = _job(polls=3)
    assert estimate_end(job) is None
    assert 8.0 <= POLICY.next_delay(job, now=10.0, rng=random.Random(0)) <= 16.0


def test_next_poll_goes_just_after_the_estimated_end():
    job = _job(progress_last={"completed": 5, "total": 10, "failed": 0, "observed_at": 50.0})
    assert POLICY.next_delay(job, now=50.0, rng=random.Random(0)) == pytest.approx(50.0)


def test_delay_never_passes_the_deadline_or_the_maximum():
    far = _job(progress_last={"completed": 1, "total": 1000, "failed": 0, "observed_at": 10.0})
    assert POLICY.next_delay(far, now=10.0, rng=random.Random(0)) == 60.0
    near_deadline = _job(deadline_at=13.0, polls=10)
    assert POLICY.next_delay(near_deadline, now=10.0, rng=random.Random(0)) == 3.0
