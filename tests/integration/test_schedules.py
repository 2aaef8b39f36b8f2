"""evalq's own schedules with real parts: `evalq beat` and `evalq worker` processes, a
private redis-server and the emulator over HTTP. Each slot of a schedule reaches intake
once, through a beat SIGKILLed and restarted and through two beats at once; a broken entry
is refused while the good ones run. Outcomes are read from evals.results as any consumer
reads them."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import yaml

from api_contracts.examples import sample_request
from evalq_emulators.processes import ManagedProcess, evalq_command, wait_for_line

#: Seconds between two evals.schedules sent by beat.
INTERVAL = "0.5"


def request_body() -> dict[str, Any]:
    """A schedule's request (no request_id, no producer: schedule.NAME), one session long."""
    body = sample_request()
    del body["request_id"], body["producer"]
    body["evaluation"]["tags"] = {"emulator:sessions": "1"}
    return body


def every(name: str, seconds: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "every": seconds, "request": request_body(), **fields}


def write_schedules(path: Path, *entries: Any) -> None:
    """Write the file whole, then rename it over the old one (docs/schedules.md)."""
    staged = path.with_suffix(".tmp")
    staged.write_text(yaml.safe_dump({"schedules": list(entries)}))
    staged.replace(path)


def start(emulator_factory, cluster_factory, path: Path, **settings: str):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator, EVALQ_SCHEDULES_FILE=str(path),
                              EVALQ_SCHEDULES_INTERVAL=INTERVAL,
                              EVALQ_TARGETS_RELOAD_SECONDS="1", **settings)  # fmt: skip
    cluster.start_worker("w1", concurrency=2)
    return emulator, cluster


class Store:
    """The job store, read as ops would (what `evalq schedules` and the exporter read)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.client = redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)

    def slots(self, name: str) -> list[int]:
        """Start (Unix time) of each slot of ``name`` registered as a job, in order."""
        ids = self.client.zrange("evalq:jobs", 0, -1)
        prefix = f"{name}-"
        return sorted(_slot(i[len(prefix) :]) for i in ids if i.startswith(prefix))

    def counted(self, name: str) -> dict[str, int]:
        raw = self.client.hgetall("evalq:metrics:evalq_schedule_slots")
        return {k.split("|")[1]: int(v) for k, v in raw.items() if k.startswith(f"{name}|")}

    def intake(self) -> dict[str, int]:
        raw = self.client.hgetall("evalq:metrics:evalq_requests")
        return {k.split("|")[0]: int(v) for k, v in raw.items()}

    def wait_for(self, name: str, ready, timeout: float = 90.0) -> list[int]:
        deadline = time.monotonic() + timeout
        while not ready(slots := self.slots(name)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: only slots {slots}")
            time.sleep(0.2)
        return slots


def _slot(stamp: str) -> int:
    return int(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def _request_id(name: str, slot: int) -> str:
    return f"{name}-{datetime.fromtimestamp(slot, UTC):%Y-%m-%dT%H:%M:%SZ}"


def contiguous(slots: list[int], period: int) -> list[int]:
    return list(range(slots[0], slots[-1] + 1, period))


def wait_until_phase(period: int, phase: float) -> float:
    """Sleep until the clock is ``phase`` seconds into a period; the time then."""
    now = time.time()
    time.sleep((phase - now % period) % period)
    return time.time()


def settle_and_collect(
    producer, store: Store, path: Path, names: list[str]
) -> dict[str, list[dict]]:
    """Stop the schedules (an empty file: beat keeps ticking, so jobs end), then every
    submitted request's outcome, by schedule."""
    write_schedules(path)
    time.sleep(3.0)  # every worker process reloaded it (1 s) and a run already sent ended
    expected = {_request_id(n, s) for n in names for s in store.slots(n)}
    outcomes = producer.collect(len(expected), timeout=120)
    by_id = {o["request_id"]: o for o in outcomes}  # delivery is at least once
    assert set(by_id) == expected
    assert {o["status"] for o in by_id.values()} == {"COMPLETED"}
    return {n: [o for i, o in by_id.items() if i.startswith(f"{n}-")] for n in names}


def one_job_per_request(emulator) -> None:
    per_token = collections.Counter(job["clientToken"] for job in emulator.jobs())
    assert max(per_token.values()) == 1


def test_every_5_seconds_for_30_seconds_gives_one_request_per_slot(
    emulator_factory, cluster_factory, producer, tmp_path
):
    path = tmp_path / "schedules.yaml"
    write_schedules(path, every("every5", 5))
    emulator, cluster = start(emulator_factory, cluster_factory, path)
    cluster.start_beat()
    store = Store(cluster.env)

    store.wait_for("every5", lambda s: len(s) >= 6)  # 30 s of slots
    outcomes = settle_and_collect(producer, store, path, ["every5"])
    slots = store.slots("every5")

    assert slots == contiguous(slots, 5)  # no slot left out ...
    assert all(s % 5 == 0 for s in slots)
    assert len(outcomes["every5"]) == len(slots)  # ... none twice
    assert {o["producer"] for o in outcomes["every5"]} == {"schedule.every5"}
    one_job_per_request(emulator)
    assert store.counted("every5") == {"submitted": len(slots)}
    assert store.intake() == {"created": len(slots)}  # not even a duplicate reached intake


def test_beat_sigkilled_and_restarted_submits_no_slot_twice_and_follows_catch_up(
    emulator_factory, cluster_factory, producer, tmp_path
):
    """Three schedules every 10 s, one per catch_up; beat is SIGKILLed halfway through a
    period and restarted 3 s into the period three later, so the slots at +10, +20 and +30
    pass while it is down (the first run after the restart comes a few seconds later, with
    the +30 slot some seconds old: past the 2 s grace)."""
    path = tmp_path / "schedules.yaml"
    modes = {"all": "catch-all", "latest": "catch-latest", "none": "catch-none"}
    write_schedules(path, *(every(name, 10, catch_up=mode) for mode, name in modes.items()))
    emulator, cluster = start(emulator_factory, cluster_factory, path,
                              EVALQ_SCHEDULE_GRACE_SECONDS="2")  # fmt: skip
    beat = cluster.start_beat()
    store = Store(cluster.env)
    for name in modes.values():
        store.wait_for(name, lambda s: len(s) >= 1)

    killed_at = wait_until_phase(10, 5.0)
    beat.kill(signal.SIGKILL)
    beat.proc.wait(10)
    period_start = int(killed_at) // 10 * 10
    down = [period_start + 10, period_start + 20, period_start + 30]
    before = {name: store.slots(name) for name in modes.values()}
    time.sleep(down[-1] + 3.0 - time.time())  # 3 s into the period of the last one
    assert not beat.alive()
    beat = cluster.start_beat()
    after = down[-1] + 20  # two slots that start with beat running again
    for name in modes.values():
        store.wait_for(name, lambda s: s[-1] >= after)
    outcomes = settle_and_collect(producer, store, path, list(modes.values()))

    summary = []
    for mode, name in modes.items():
        slots = store.slots(name)
        missed = sorted(set(contiguous(slots, 10)) - set(slots))
        counted = store.counted(name)
        assert before[name][-1] < down[0]  # the kill came between two slots
        assert len(outcomes[name]) == len(slots)
        assert counted == {"submitted": len(slots), **({"missed": len(missed)} if missed else {})}
        expected = len(contiguous(slots, 10))
        summary.append(f"{name}: {expected} slots expected, {len(slots)} submitted, "
                       f"{len(missed)} missed, {len(outcomes[name])} outcomes")  # fmt: skip
        if mode == "all":
            assert missed == []
            assert set(down) <= set(slots)
        elif mode == "latest":
            assert missed == down[:-1]  # the latest slot of the downtime was submitted late
        else:
            assert missed == down  # none of them
    one_job_per_request(emulator)
    assert "duplicate" not in store.intake()
    print("\nbeat SIGKILLed and restarted:\n  " + "\n  ".join(summary))


def test_two_beats_at_once_submit_each_slot_once(
    emulator_factory, cluster_factory, producer, tmp_path
):
    path = tmp_path / "schedules.yaml"
    write_schedules(path, every("every3", 3))
    emulator, cluster = start(emulator_factory, cluster_factory, path)
    first = cluster.start_beat()
    second = ManagedProcess(
        "beat-2", evalq_command("beat", "--schedule", str(tmp_path / "beat-2")),
        env=cluster.env, log_path=tmp_path / "beat-2.log",
    ).start()  # fmt: skip
    cluster.processes.append(second)
    store = Store(cluster.env)

    store.wait_for("every3", lambda s: len(s) >= 7)
    for beat, log in ((first, tmp_path / "beat.log"), (second, tmp_path / "beat-2.log")):
        assert beat.alive()
        wait_for_line(log, "Sending due task evalq-schedules", 10, beat)  # both at work
    outcomes = settle_and_collect(producer, store, path, ["every3"])
    slots = store.slots("every3")

    assert slots == contiguous(slots, 3)
    assert len(outcomes["every3"]) == len(slots)
    one_job_per_request(emulator)
    assert store.counted("every3") == {"submitted": len(slots)}
    assert store.intake() == {"created": len(slots)}


def test_a_broken_entry_is_refused_and_the_good_ones_still_run(
    emulator_factory, cluster_factory, producer, tmp_path
):
    path = tmp_path / "schedules.yaml"
    bad_request = {**every("bad-request", 3), "request": {**request_body(), "priority": 12}}
    bad_cron = {"name": "bad-cron", "cron": "0 25 * * *", "request": request_body()}
    write_schedules(path, every("good", 3), bad_cron, bad_request)
    emulator, cluster = start(emulator_factory, cluster_factory, path)
    cluster.start_beat()
    store = Store(cluster.env)
    store.wait_for("good", lambda s: len(s) >= 3)

    listing = _evalq(cluster.env, "schedules", "--json")
    assert listing.returncode == 1  # the file refuses entries
    lines = [json.loads(text) for text in listing.stdout.splitlines()]
    assert [v["name"] for v in lines if "name" in v] == ["good"]
    assert lines[0]["job_state"] is not None
    assert {v["entry"]: v["error"] for v in lines if "entry" in v} == {
        "schedules[1] bad-cron": "cron: '0 25 * * *': Bad hour",
        "schedules[2] bad-request": "request.priority: Input should be less than or equal to 9",
    }

    # Fixed while everything runs: picked up without a restart.
    write_schedules(path, every("good", 3), every("fixed", 3, catch_up="none"))
    store.wait_for("fixed", lambda s: len(s) >= 2, timeout=30)
    for name in ("bad-cron", "bad-request"):
        assert store.slots(name) == []
    good = store.slots("good")
    assert good == contiguous(good, 3)
    assert _evalq(cluster.env, "schedules").returncode == 0
    one_job_per_request(emulator)


def _evalq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(evalq_command(*args), env={**os.environ, **env, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
