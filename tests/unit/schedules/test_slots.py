"""Slots: when they start, which are due after a pause, and the request id of each."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from worker.schedules.slots import (
    CatchUp,
    Cron,
    Every,
    manual_request_id,
    plan,
    slot_request_id,
    utc_iso,
)

#: The contract's RequestId.
REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def _epoch(*parts: int, zone: str = "UTC") -> int:
    return int(datetime(*parts, tzinfo=ZoneInfo(zone)).timestamp())  # type: ignore[misc]


def test_every_counts_from_the_epoch_so_every_process_finds_the_same_slots():
    every = Every(5)
    assert every.latest(1_800_000_012.7) == 1_800_000_010
    assert every.latest(1_800_000_010) == 1_800_000_010
    assert every.next_after(1_800_000_010) == 1_800_000_015
    assert every.between(1_800_000_010, 1_800_000_032, keep=2) == (
        [1_800_000_025, 1_800_000_030],
        4,
    )
    assert every.between(1_800_000_010, 1_800_000_014, keep=2) == ([], 0)
    assert Every(3600).latest(_epoch(2026, 12, 7, 2, 59, 59)) == _epoch(2026, 12, 7, 2)


def test_cron_reads_its_time_zone_and_keeps_debian_crons_daylight_saving_rules():
    paris = Cron("30 2 * * *", ZoneInfo("Europe/Paris"))
    # 2:30 does not exist on 2026-03-29 (clocks jump 2:00 -> 3:00): cron runs at 3:00.
    spring = paris.between(_epoch(2026, 3, 28, 12), _epoch(2026, 3, 30, 12), keep=5)[0]
    assert [utc_iso(s) for s in spring] == ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    # 2:30 happens twice on 2026-10-25: a daily job runs once.
    autumn = paris.between(_epoch(2026, 10, 24, 12), _epoch(2026, 10, 26, 12), keep=5)
    assert [utc_iso(s) for s in autumn[0]] == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    assert paris.latest(_epoch(2026, 12, 7, 2, 30, zone="Europe/Paris")) == _epoch(
        2026, 12, 7, 1, 30
    )
    assert paris.next_after(_epoch(2026, 12, 7, 1, 30)) == _epoch(2026, 12, 8, 1, 30)


def test_a_crons_period_is_its_longest_gap():
    assert Cron("0 2 * * *", ZoneInfo("UTC")).period == 86_400
    assert Cron("0 2 * * 1-5", ZoneInfo("UTC")).period == 3 * 86_400
    assert Cron("*/10 * * * *", ZoneInfo("UTC")).period == 600
    assert Every(42).period == 42


def test_a_cron_far_behind_is_walked_a_bounded_way(monkeypatch):
    import worker.schedules.slots as slots

    monkeypatch.setattr(slots, "MAX_SCAN", 50)
    minutely = Cron("* * * * *", ZoneInfo("UTC"))
    start = _epoch(2026, 1, 1)
    latest, count = minutely.between(start, start + 3600, keep=3)
    assert latest == [start + 3480, start + 3540, start + 3600]
    assert count == 50


NOW = 1_800_000_032.4  # slots of every 5 s at ...015, 020, 025, 030 since ...010


@pytest.mark.parametrize(
    ("catch_up", "submit", "missed"),
    [
        (CatchUp.ALL, (15, 20, 25, 30), 0),
        (CatchUp.LATEST, (30,), 3),
        (CatchUp.NONE, (), 4),  # the latest slot is 2.4 s old: past the 1 s grace
    ],
)
def test_after_a_pause_each_catch_up_submits_what_it_says(catch_up, submit, missed):
    got = plan(Every(5), catch_up, 1_800_000_010, NOW, grace=1.0, limit=100)
    assert got is not None
    assert got.submit == tuple(1_800_000_000 + s for s in submit)
    assert (got.missed, got.cursor) == (missed, 1_800_000_030)


def test_none_still_submits_a_slot_found_within_the_grace():
    got = plan(Every(5), CatchUp.NONE, 1_800_000_010, NOW, grace=3.0, limit=100)
    assert got is not None
    assert (got.submit, got.missed) == ((1_800_000_030,), 3)


def test_all_submits_at_most_the_limit_the_latest_ones():
    got = plan(Every(5), CatchUp.ALL, 1_800_000_010, NOW, grace=1.0, limit=2)
    assert got is not None
    assert (got.submit, got.missed) == ((1_800_000_025, 1_800_000_030), 2)


def test_nothing_is_due_twice_and_a_new_schedule_starts_with_its_next_slot():
    assert plan(Every(5), CatchUp.ALL, 1_800_000_030, NOW, grace=1.0, limit=9) is None
    first = plan(Every(5), CatchUp.ALL, None, NOW, grace=1.0, limit=9)
    assert first is not None
    assert (first.submit, first.missed, first.cursor) == ((), 0, 1_800_000_032)
    # In normal running each slot is found once, just after it starts.
    again = plan(Every(5), CatchUp.NONE, first.cursor, 1_800_000_035.2, grace=1.0, limit=9)
    assert again is not None
    assert (again.submit, again.missed) == ((1_800_000_035,), 0)


def test_request_ids_name_the_slot_and_fit_the_contract():
    slot = _epoch(2026, 12, 7, 2)
    assert slot_request_id("nightly-safety", slot) == "nightly-safety-2026-12-07T02:00:00Z"
    longest = "n" * 55
    for request_id in (
        slot_request_id(longest, _epoch(9999, 12, 31, 23, 59, 59)),
        manual_request_id(longest, datetime(2026, 12, 7, 10, 15, 3, 900_000, UTC).timestamp()),
    ):
        assert REQUEST_ID.match(request_id)
        assert len(request_id) <= 128
    assert manual_request_id("nightly", slot + 3.9) == "nightly-manual-2026-12-07T02:00:03Z"
