"""evals.schedules on fakeredis with a clock the test moves: each slot reaches intake
once, whatever runs it twice, dies midway or pauses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.conftest import reconfigure
from tests.unit.schedules.test_config import request
from worker.jobs import intake
from worker.schedules.book import ScheduleBook
from worker.schedules.runner import ScheduleRunner, claim_lease
from worker.schedules.slots import plan, utc_iso
from worker.schedules.state import ScheduleState

START = 1_800_000_000.0  # the clock fixture's; a multiple of 5


def write(path: Path, *entries: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump({"schedules": list(entries)}))


def every(name: str, seconds: int = 5, **fields: Any) -> dict[str, Any]:
    return {"name": name, "every": seconds, "request": request(), **fields}


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "schedules.yaml"
    write(path, every("every5"))
    return path


def make_runner(services, path: Path) -> ScheduleRunner:
    """What one worker process builds (each reads the file itself)."""
    book = ScheduleBook(str(path), reload_seconds=1.0, clock=services.clock)
    return ScheduleRunner(services, book, ScheduleState(services.redis, services.keys))


def run_for(services, runners: list[ScheduleRunner], seconds: float, step: float = 0.5) -> None:
    """Move the clock ``seconds`` in steps, every runner running at each step."""
    end = services.clock() + seconds
    while services.clock() < end:
        services.clock.advance(step)
        for runner in runners:
            runner.run()


def submitted(services, name: str = "every5") -> list[str]:
    """Request ids of the schedule's jobs, oldest first."""
    ids = services.redis.zrange(services.keys.jobs_by_time, 0, -1)
    return sorted(i for i in ids if i.startswith(f"{name}-"))


def slot_ids(name: str, first: float, last: float, step: int = 5) -> list[str]:
    return [f"{name}-{utc_iso(s)}" for s in range(int(first), int(last) + 1, step)]


def counted(services) -> dict[str, int]:
    raw = services.redis.hgetall(services.keys.metrics_schedule_slots)
    return {k: int(v) for k, v in raw.items()}


def test_every_slot_reaches_intake_once_from_its_next_slot_on(services, path):
    runner = make_runner(services, path)
    runner.run()  # first sight: starts with the next slot
    run_for(services, [runner], 30)
    assert submitted(services) == slot_ids("every5", START + 5, START + 30)
    job = services.store.get(submitted(services)[0])
    assert job is not None
    assert job.producer == "schedule.every5"
    assert counted(services) == {"every5|submitted": 6}
    record = ScheduleState(services.redis, services.keys).read(["every5"])["every5"]
    assert (record.cursor, record.last_slot) == (START + 30, START + 30)
    assert record.last_request_id == f"every5-{utc_iso(START + 30)}"
    assert (record.last_job_id, record.last_outcome) == (record.last_request_id, "created")
    assert record.since == START
    assert not record.pending


def test_two_beats_and_redelivered_runs_submit_each_slot_once(services, path):
    runners = [make_runner(services, path) for _ in range(3)]
    run_for(services, runners, 30, step=0.25)
    assert submitted(services) == slot_ids("every5", START + 5, START + 30)
    assert counted(services) == {"every5|submitted": 6}
    intake_counts = services.redis.hgetall(services.keys.metrics_requests)
    assert intake_counts == {"created|agentcore|default": "6"}  # no duplicate reached intake


def test_a_run_that_read_before_another_claimed_claims_nothing(services, path):
    first, second = make_runner(services, path), make_runner(services, path)
    first.run()
    services.clock.advance(5.2)
    state = ScheduleState(services.redis, services.keys)
    seen = state.read(["every5"])["every5"]
    second.run()  # claims and submits START + 5
    schedule = first.book.current().schedules[0]
    due = plan(schedule.spec, schedule.catch_up, seen.cursor, services.clock(), grace=60, limit=9)
    assert due is not None
    assert not state.claim("every5", seen.cursor, due, {}, services.clock())
    assert submitted(services) == slot_ids("every5", START + 5, START + 5)


@pytest.mark.parametrize(
    ("catch_up", "after_pause", "missed"),
    [
        ("all", [10, 15, 20, 25], 0),
        ("latest", [25], 3),
        ("none", [], 4),
    ],
)
def test_a_pause_is_caught_up_as_the_schedule_says(services, path, catch_up, after_pause, missed):
    write(path, every("every5", catch_up=catch_up))
    reconfigure(services, schedule_grace_seconds=1.0)
    runner = make_runner(services, path)
    runner.run()
    run_for(services, [runner], 5)  # START + 5 submitted on time
    services.clock.advance(22.5)  # beat down: 10, 15, 20, 25 pass; 25 is 2.5 s old
    runner.run()
    run_for(services, [runner], 5)  # 30 on time again
    expected = [5, *after_pause, 30]
    assert submitted(services) == [f"every5-{utc_iso(START + s)}" for s in expected]
    assert counted(services).get("every5|missed", 0) == missed
    assert counted(services)["every5|submitted"] == len(expected)


def test_catching_up_all_is_bounded_by_the_limit(services, path):
    write(path, every("every5", catch_up="all"))
    reconfigure(services, schedule_catch_up_limit=2)
    runner = make_runner(services, path)
    runner.run()
    services.clock.advance(30.1)
    runner.run()
    assert submitted(services) == slot_ids("every5", START + 25, START + 30)
    assert counted(services) == {"every5|missed": 4, "every5|submitted": 2}


def _first_slot_with_intake_raising(services, runner, monkeypatch, error):
    """Run ``runner`` until its first slot (START + 5) comes due, with intake raising
    ``error`` for that slot alone; the run's report."""
    runner.run()
    real = intake.accept

    def failing(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(intake, "accept", failing)
    services.clock.advance(5.1)
    report = runner.run()
    monkeypatch.setattr(intake, "accept", real)
    return report


def test_slots_claimed_by_a_run_that_died_are_sent_once_after_the_lease(
    services, path, monkeypatch
):
    runner = make_runner(services, path)
    # Claimed START + 5, then died handing it to intake.
    report = _first_slot_with_intake_raising(services, runner, monkeypatch, OSError("gone"))
    assert report.failed == ["every5"]
    run_for(services, [runner], claim_lease(services.settings) - 1.0)
    assert submitted(services) == []  # still within the lease: the claimer may be sending
    services.clock.advance(1.0)
    runner.run()  # takes the pending slot over
    run_for(services, [runner], 5)
    sent = submitted(services)
    assert sent[0] == f"every5-{utc_iso(START + 5)}"
    assert len(sent) == len(set(sent))
    assert counted(services)["every5|submitted"] == len(sent)


def test_a_broken_entry_is_refused_and_published_and_the_others_run(services, path):
    write(path, every("every5"), every("broken", seconds=0), {"every": 5})
    runner = make_runner(services, path)
    runner.run()
    run_for(services, [runner], 10)
    assert submitted(services) == slot_ids("every5", START + 5, START + 10)
    keys = services.keys
    assert services.redis.hgetall(keys.schedules) == {"every5": "5", "broken": ""}
    assert services.redis.hgetall(keys.schedule_errors) == {
        "schedules[1] broken": "every: Input should be greater than or equal to 1",
        "schedules[2]": "name: Field required\nrequest: Field required",
    }
    assert services.redis.exists(keys.schedule("broken")) == 0


def test_a_changed_file_is_picked_up_and_a_removed_schedule_forgotten(services, path):
    runner = make_runner(services, path)
    runner.run()
    run_for(services, [runner], 5)
    write(path, every("every3", seconds=3))
    os.utime(path, (1, 1))  # a new modification time, however fast the test
    run_for(services, [runner], 7)  # seen at START + 6 (a reload a second): 9 and 12 due
    assert submitted(services, "every3") == slot_ids("every3", START + 9, START + 12, step=3)
    assert services.redis.exists(services.keys.schedule("every5")) == 0
    assert services.redis.hgetall(services.keys.schedules) == {"every3": "3"}


def test_a_slot_the_producers_policy_refuses_is_a_dead_letter_once(services, path, tmp_path):
    producers = tmp_path / "producers.yaml"
    producers.write_text(yaml.safe_dump({"unlisted": "refuse", "producers": [{"name": "x"}]}))
    reconfigure(services, producers_file=str(producers))
    runner = make_runner(services, path)
    runner.run()
    run_for(services, [runner], 5)
    letters = list(services.dead_letters.iter())
    assert [(d.reason, d.request_id) for d in letters] == [
        ("producer_not_allowed", f"every5-{utc_iso(START + 5)}")
    ]
    record = ScheduleState(services.redis, services.keys).read(["every5"])["every5"]
    assert record.last_outcome == "rejected"
    assert record.last_job_id is not None
    assert services.store.get(record.last_job_id) is None


def test_the_exporter_reads_each_schedules_period_last_slot_and_refusals(services, path):
    from prometheus_client.core import CollectorRegistry

    from worker.runtime.exporter import EvalqCollector

    write(path, every("every5"), every("later", seconds=3600), every("broken", seconds=0))
    runner = make_runner(services, path)
    runner.run()
    run_for(services, [runner], 10)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EvalqCollector(services.redis, None, services.settings, services.clock))

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("evalq_schedule_period_seconds", schedule="every5") == 5
    assert sample("evalq_schedule_period_seconds", schedule="later") == 3600
    assert sample("evalq_schedule_period_seconds", schedule="broken") is None
    assert sample("evalq_schedule_last_slot_timestamp_seconds", schedule="every5") == START + 10
    # Before its first slot, the time evalq began running it.
    assert sample("evalq_schedule_last_slot_timestamp_seconds", schedule="later") == START
    assert sample("evalq_schedule_refused_entries") == 1
    assert sample("evalq_schedule_slots_total", schedule="every5", result="submitted") == 2


def test_a_slot_whose_intake_fails_unforeseen_is_a_dead_letter_and_the_next_slots_run(
    services, path, monkeypatch
):
    # Sent again after each lease it would fail again, and hold every later slot back.
    runner = make_runner(services, path)
    _first_slot_with_intake_raising(services, runner, monkeypatch, KeyError("x"))
    letters = list(services.dead_letters.iter())
    assert [(d.reason, d.request_id) for d in letters] == [
        ("internal_error", f"every5-{utc_iso(START + 5)}")
    ]
    run_for(services, [runner], 5)
    assert submitted(services) == [f"every5-{utc_iso(START + 10)}"]
