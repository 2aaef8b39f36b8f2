"""The producer example of docs/schedules.md (examples/producer_beat.py), run as another
team runs it: real `celery beat` processes of its own Celery app against a real evalq.
Two of its beats at once send every slot twice; evalq starts each slot once."""

from __future__ import annotations

import collections
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import redis
from celery.beat import ScheduleEntry
from celery.schedules import crontab

from evalq_emulators.processes import ManagedProcess, wait_for_line
from examples import producer_beat

ROOT = Path(__file__).resolve().parents[2]
NAME = "team-a-safety"


def test_the_slot_comes_from_the_schedule_not_from_the_send_time():
    app = producer_beat.app
    yesterday = datetime(2026, 12, 6, 2, 0, 0, 412_000, tzinfo=UTC)  # sent 0.4 s late
    nightly = ScheduleEntry(name=NAME, task="evals.submit", schedule=crontab(minute=0, hour=2),
                            last_run_at=yesterday, app=app)  # fmt: skip
    assert producer_beat.slot_request_id(NAME, producer_beat.due_slot(nightly)) == (
        "team-a-safety-2026-12-07T02:00:00Z"
    )
    every = ScheduleEntry(name=NAME, task="evals.submit", app=app,
                          schedule=producer_beat.EverySeconds(5),
                          last_run_at=datetime(2026, 12, 7, 2, 0, 3, tzinfo=UTC))  # fmt: skip
    assert producer_beat.due_slot(every) == datetime(2026, 12, 7, 2, 0, 5, tzinfo=UTC)


def test_two_producer_beats_with_slot_request_ids_start_each_slot_once(
    emulator_factory, cluster_factory, producer, broker, tmp_path
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator)
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()  # evalq's own beat: its ticks
    beats = [_producer_beat(broker.url, tmp_path, n) for n in (1, 2)]
    cluster.processes.extend(beats)
    store = redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"], decode_responses=True)

    deadline = time.monotonic() + 90
    while len(_slots(store)) < 6 and time.monotonic() < deadline:
        time.sleep(0.3)
    for n, beat in enumerate(beats, 1):
        wait_for_line(tmp_path / f"team-beat-{n}.log", "Sending due task team-a-safety", 5, beat)
        beat.stop()
    time.sleep(1.0)
    slots = _slots(store)
    outcomes = producer.collect(len(slots), timeout=120)

    assert len(slots) >= 6
    assert slots == list(range(slots[0], slots[-1] + 1, 3))  # every slot, in 3 s steps
    assert {o["request_id"] for o in outcomes} == {_request_id(s) for s in slots}
    per_request = collections.Counter(job["clientToken"] for job in emulator.jobs())
    assert len(per_request) == len(slots)
    assert max(per_request.values()) == 1
    counted = store.hgetall("evalq:metrics:evalq_requests")
    intake = {k.split("|")[0]: int(v) for k, v in counted.items()}
    assert intake["created"] == len(slots)
    assert intake.get("duplicate", 0) >= 1  # both beats sent slots: the second send took nothing


def _producer_beat(broker_url: str, tmp_path: Path, n: int) -> ManagedProcess:
    argv = [sys.executable, "-m", "celery", "-A", "examples.producer_beat", "beat",
            "--schedule", str(tmp_path / f"team-beat-{n}"), "--loglevel", "INFO"]  # fmt: skip
    env = {"TEAM_BROKER_URL": broker_url, "TEAM_EVERY_SECONDS": "3"}
    log = tmp_path / f"team-beat-{n}.log"
    return ManagedProcess(f"team-beat-{n}", argv, env=env, log_path=log, cwd=ROOT).start()


def _slots(store: redis.Redis) -> list[int]:
    prefix = f"{NAME}-"
    ids = [i for i in store.zrange("evalq:jobs", 0, -1) if i.startswith(prefix)]
    stamps = (datetime.strptime(i[len(prefix) :], "%Y-%m-%dT%H:%M:%SZ") for i in ids)
    return sorted(int(stamp.replace(tzinfo=UTC).timestamp()) for stamp in stamps)


def _request_id(slot: int) -> str:
    return producer_beat.slot_request_id(NAME, datetime.fromtimestamp(slot, UTC))
