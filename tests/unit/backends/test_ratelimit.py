"""The shared rate limit: a sliding log of calls in Redis, window = quota's + margin."""

from __future__ import annotations

import pytest

from worker.backends.ratelimit import SharedRateLimits, window_for
from worker.keys import TargetKeys

T0 = 1_800_000_000.0


@pytest.fixture
def limits(fake_redis) -> SharedRateLimits:
    return SharedRateLimits(
        fake_redis, {"start": 3.0, "get": 60.0, "delete": 0.5}, TargetKeys("t"), 0.05
    )


@pytest.mark.parametrize(
    ("rate", "window"), [(3.0, (3, 1.0)), (60.0, (60, 1.0)), (0.5, (1, 2.0)), (2.5, (2, 0.8))]
)
def test_a_rate_becomes_calls_per_window(rate, window):
    calls, seconds = window_for(rate)
    assert (calls, seconds) == (window[0], pytest.approx(window[1]))


def test_the_quota_goes_at_once_and_the_next_call_waits_for_the_window_plus_margin(limits):
    assert [limits.acquire("start", now=T0 + i * 0.1) for i in range(3)] == [0.0, 0.0, 0.0]
    assert limits.acquire("start", now=T0 + 0.5) == pytest.approx(0.55)
    # Refused calls are not counted: the window still opens 1.05 s after the first call.
    assert limits.acquire("start", now=T0 + 1.04) == pytest.approx(0.01)
    assert limits.acquire("start", now=T0 + 1.05) == 0.0


def test_a_call_just_past_the_bare_one_second_window_still_waits_for_the_margin(limits):
    for i in range(3):
        limits.acquire("start", now=T0 + i * 0.01)
    assert limits.acquire("start", now=T0 + 1.001) == pytest.approx(0.049)


def test_over_any_window_no_more_calls_go_than_the_quota(limits):
    granted = []
    now = T0
    while now < T0 + 10:
        if limits.acquire("start", now=now) == 0.0:
            granted.append(now)
        now += 0.013
    spans = [later - earlier for earlier, later in zip(granted, granted[3:], strict=False)]
    assert min(spans) >= 1.05 - 1e-9
    assert len(granted) >= 27  # 3 per 1.05 s over 10 s


def test_operations_have_their_own_windows(limits):
    for i in range(3):
        limits.acquire("start", now=T0 + i * 0.001)
    assert limits.acquire("get", now=T0 + 0.01) == 0.0
    assert limits.acquire("delete", now=T0) == 0.0
    assert limits.acquire("delete", now=T0 + 1.0) == pytest.approx(1.05)


def test_without_a_given_time_redis_keeps_the_clock(fake_redis):
    slow = SharedRateLimits(fake_redis, {"list": 0.001}, TargetKeys("t"), 0.05)
    assert slow.acquire("list") == 0.0
    assert 0.0 < slow.acquire("list") <= 1000.05
