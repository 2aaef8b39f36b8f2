from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from worker.backends.agentcore.status import counts_of
from worker.backends.base import RemoteJob
from worker.jobs.polling import PollPolicy, estimate_end, track_progress
from worker.jobs.record import Job
from worker.jobs.states import JobState

POLICY = PollPolicy(initial=2.0, maximum=60.0, multiplier=2.0, minimum=0.5, end_margin=1.0)


def _job(**values) -> Job:
    base = dict(request_id="r", state=JobState.RUNNING, request={}, payload_hash="h",
                producer="p", backend="agentcore", accepted_at=0.0, deadline_at=10_000.0,
                retention_seconds=0.0, started_at=0.0)  # fmt: skip
    return Job(**{**base, **values})


def _point(done: int, total: int, at: float, changed_at: float | None = None) -> dict:
    return {"completed": done, "total": total, "failed": 0, "observed_at": at,
            "changed_at": changed_at}  # fmt: skip


def _remote(status: str, done: int, total: int, updated_at: float | None = None) -> RemoteJob:
    body: dict = {
        "status": status,
        "evaluationResults": {"numberOfSessionsCompleted": done, "totalNumberOfSessions": total},
    }
    if updated_at is not None:
        body["updatedAt"] = datetime.fromtimestamp(updated_at, tz=UTC).isoformat()
    return RemoteJob(id="b", arn=None, name=None, status=status, body=body, counts=counts_of(body))


@pytest.mark.parametrize("attempt", range(12))
def test_backoff_stays_between_half_step_and_step_and_is_capped(attempt):
    step = min(60.0, 2.0 * 2**attempt)
    for seed in range(20):
        delay = POLICY.backoff(attempt, random.Random(seed))
        assert step / 2 <= delay <= step


def test_end_is_projected_from_the_session_rate_between_anchor_and_latest_point():
    job = _job(progress_first=_point(2, 10, 100.0), progress_last=_point(6, 10, 140.0))
    assert estimate_end(job) == pytest.approx(180.0)


def test_the_remotes_change_times_beat_the_times_we_looked():
    # Sessions 0 -> 4 took 20 s by the remote's clock, though our polls were 40 s apart.
    job = _job(
        progress_first=_point(0, 10, 100.0, changed_at=99.0),
        progress_last=_point(4, 10, 140.0, changed_at=119.0),
    )
    assert estimate_end(job) == pytest.approx(119.0 + 6 * 5.0)


def test_change_times_that_do_not_move_fall_back_to_the_times_we_looked():
    job = _job(
        progress_first=_point(2, 10, 100.0, changed_at=50.0),
        progress_last=_point(6, 10, 140.0, changed_at=50.0),
    )
    assert estimate_end(job) == pytest.approx(180.0)


def test_one_point_or_no_new_session_gives_no_estimate_and_polls_back_off():
    single = _job(progress_first=_point(5, 10, 50.0), progress_last=_point(5, 10, 50.0), polls=3)
    assert estimate_end(single) is None
    assert 8.0 <= POLICY.next_delay(single, now=50.0, rng=random.Random(0)) <= 16.0
    assert estimate_end(_job(polls=3)) is None


def test_next_poll_lands_end_margin_after_the_projected_end():
    job = _job(progress_first=_point(0, 10, 0.0), progress_last=_point(5, 10, 50.0))
    assert POLICY.next_delay(job, now=50.0, rng=random.Random(0)) == pytest.approx(51.0)


def test_past_the_projected_end_the_gap_doubles_up_to_the_maximum():
    # Every session is done at t=100 but the job has not closed yet.
    job = _job(progress_first=_point(0, 10, 0.0), progress_last=_point(10, 10, 100.0))
    assert POLICY.next_delay(job, now=100.2, rng=random.Random(0)) == pytest.approx(0.8)
    assert POLICY.next_delay(job, now=101.5, rng=random.Random(0)) == pytest.approx(1.5)
    assert POLICY.next_delay(job, now=103.0, rng=random.Random(0)) == pytest.approx(3.0)
    assert POLICY.next_delay(job, now=110.0, rng=random.Random(0)) == pytest.approx(10.0)
    assert POLICY.next_delay(job, now=500.0, rng=random.Random(0)) == 60.0


def test_delay_never_passes_the_deadline_or_the_maximum():
    far = _job(progress_first=_point(0, 1000, 0.0), progress_last=_point(1, 1000, 10.0))
    assert POLICY.next_delay(far, now=10.0, rng=random.Random(0)) == 60.0
    near_deadline = _job(deadline_at=13.0, polls=10)
    assert POLICY.next_delay(near_deadline, now=10.0, rng=random.Random(0)) == 3.0


def test_tracking_ignores_a_pending_job_and_keeps_the_first_running_point_as_anchor():
    job = _job()
    assert track_progress(job, _remote("PENDING", 0, 10, updated_at=5.0), now=6.0) == {}
    assert job.progress_first is None

    first = track_progress(job, _remote("IN_PROGRESS", 0, 10, updated_at=8.0), now=9.0)
    assert first["progress_first"] == first["progress_last"]
    assert first["progress_first"]["changed_at"] == pytest.approx(8.0)

    later = track_progress(job, _remote("IN_PROGRESS", 3, 10, updated_at=14.0), now=20.0)
    assert "progress_first" not in later
    assert job.progress_first["completed"] == 0
    assert job.progress_last["completed"] == 3
    assert estimate_end(job) == pytest.approx(14.0 + 7 * 2.0)


def test_a_change_time_ahead_of_our_clock_is_taken_as_now():
    job = _job()
    track_progress(job, _remote("IN_PROGRESS", 1, 10, updated_at=30.0), now=20.0)
    assert job.progress_last["changed_at"] == pytest.approx(20.0)
    track_progress(job, _remote("IN_PROGRESS", 2, 10), now=25.0)
    assert job.progress_last["changed_at"] is None
    assert estimate_end(job) == pytest.approx(25.0 + 8 * 5.0)
