"""Targets at work over fakeredis and two in-process emulators (two accounts): routing at
intake, admission and slots per target, the janitor per target, reloading the file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_contracts import EvaluationRequest
from api_contracts.examples import sample_request
from evalq_emulators.agentcore import EmulatorConfig, EmulatorServer
from tests.unit.conftest import reconfigure
from tests.unit.driving import run_until
from worker.janitor import sweep as janitor
from worker.jobs import moves
from worker.jobs.intake import accept
from worker.jobs.states import JobState

LONG = {"emulator:duration": "1000000000000"}


@pytest.fixture
def second_account(clock) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(time_scale=10_000.0, mutate_tps=1000.0, read_tps=1000.0, seed=8)
    with EmulatorServer(config, clock=clock, sleep=clock.sleep) as server:
        yield server


def _rewrite(path: Path, text: str) -> None:
    """A new version of the file, with a later modification time (on any file system)."""
    stamp = path.stat().st_mtime + 1
    path.write_text(text)
    os.utime(path, (stamp, stamp))


@pytest.fixture
def two_targets(services, emulator, second_account, tmp_path) -> Path:
    """Target ``a`` (quota 1, the unit emulator) and ``b`` (quota 2, a second one),
    routed by service name; no default."""
    path = tmp_path / "targets.yaml"
    path.write_text(
        f"""
targets:
  - name: a
    region: us-east-1
    endpoint_url: {emulator.url}
    max_active_jobs: 1
    match: {{service_names: [agent-a]}}
  - name: b
    region: us-east-1
    endpoint_url: {second_account.url}
    max_active_jobs: 2
    job_name_prefix: evalqb_
    match: {{service_names: [agent-b]}}
"""
    )
    reconfigure(services, targets_file=str(path))
    return path


def _request(request_id: str, service: str, tags: dict[str, str] | None = None) -> dict:
    request = sample_request(request_id=request_id)
    request["evaluation"]["dataSourceConfig"] = {
        "cloudWatchLogs": {"serviceNames": [service], "logGroupNames": ["/aws/agents/x"]}
    }
    request["evaluation"]["tags"] = tags or {"emulator:sessions": "2"}
    return request


def test_requests_are_routed_and_each_target_fills_its_own_slots(services, two_targets):
    for i in range(3):
        accept(services, _request(f"a{i}", "agent-a", tags=LONG))
        accept(services, _request(f"b{i}", "agent-b", tags=LONG))
    jobs = {rid: services.store.get(rid) for rid in ("a0", "a1", "a2", "b0", "b1", "b2")}
    assert {rid: job.target for rid, job in jobs.items()} == {
        "a0": "a", "a1": "a", "a2": "a", "b0": "b", "b1": "b", "b2": "b",
    }  # fmt: skip
    assert services.store.active_count("a") == 1
    assert services.store.active_count("b") == 2
    assert services.store.backlog_size("a") == 2
    assert services.store.backlog_size("b") == 1


def test_a_paused_target_never_holds_another_back(services, two_targets, clock):
    accept(services, _request("a0", "agent-a", tags=LONG))
    admitted = services.store.get("a0")
    # The account of a says it is full: a is paused for a while.
    services.store.requeue(admitted, now=clock(), pause_until=clock() + 3600)
    accept(services, _request("a1", "agent-a", tags=LONG))
    accept(services, _request("b0", "agent-b", tags=LONG))
    assert moves.admit(services, "a") == []
    assert services.store.get("b0").state == JobState.ADMITTED
    assert services.store.active_count("a") == 0


def test_a_request_no_target_takes_is_a_dead_letter_naming_what_was_tried(services, two_targets):
    result = accept(services, _request("lost", "agent-z"))
    assert (result.outcome, services.store.get("lost")) == ("rejected", None)
    (letter,) = services.dead_letters.find()
    assert letter.reason == "no_target"
    assert "agent-z" in letter.error
    assert "tried: a, b" in letter.error
    # Counted as rejected, under no target (a label names only configured targets).
    counted = services.redis.hgetall(services.keys.metrics_requests)
    assert counted == {"rejected|agentcore|unknown": "1"}


def test_jobs_run_in_their_targets_account_with_its_prefix(
    services, two_targets, emulator, second_account, clock
):
    accept(services, _request("a0", "agent-a"))
    accept(services, _request("b0", "agent-b"))
    for rid in ("a0", "b0"):
        run_until(services, rid, JobState.PUBLISHED, clock)
    first = [j["batchEvaluationName"] for j in emulator.state.jobs()]
    second = [j["batchEvaluationName"] for j in second_account.state.jobs()]
    assert len(first) == len(second) == 1
    assert first[0].startswith("evalq_")
    assert second[0].startswith("evalqb_")
    outcomes = {o.request_id: o for o, _ in services.publisher.published}
    assert (outcomes["a0"].target, outcomes["b0"].target) == ("a", "b")


def test_the_janitor_of_one_target_never_touches_another_targets_jobs(
    services, two_targets, second_account, clock
):
    # A job with a's prefix running in b's account (someone else's, to b's janitor).
    evaluation = EvaluationRequest.model_validate(sample_request()).evaluation
    params = evaluation.to_boto3_kwargs() | {"batchEvaluationName": "evalq_foreign", "tags": LONG}
    client = services.targets["b"].backend.client
    client.start_batch_evaluation(clientToken=f"x-{uuid.uuid4().hex}", **params)
    # And an orphan with b's own prefix there.
    orphan = params | {"batchEvaluationName": "evalqb_orphan"}
    client.start_batch_evaluation(clientToken=f"y-{uuid.uuid4().hex}", **orphan)

    report = janitor.sweep(services)

    stopped = {j["batchEvaluationName"] for j in second_account.state.jobs()
               if j["stop_requested_at"]}  # fmt: skip
    assert stopped == {"evalqb_orphan"}
    assert report.by_target["b"]["stopped"] == 1
    assert report.by_target["a"]["stopped"] == 0
    assert report.remote_jobs == 2  # a's account is empty


def test_a_changed_targets_file_is_picked_up_without_a_restart(
    services, two_targets, second_account
):
    # Looked at again on each use (the file watch runs on the process's own clock).
    reconfigure(services, targets_file=str(two_targets), targets_reload_seconds=1e-9)
    assert services.targets.get("c") is None
    text = two_targets.read_text() + (
        f"  - name: c\n    region: us-east-1\n    endpoint_url: {second_account.url}\n"
        "    match: {service_names: [agent-c]}\n"
    )
    _rewrite(two_targets, text)
    accept(services, _request("c0", "agent-c", tags=LONG))
    assert services.store.get("c0").target == "c"
    # A file that no longer parses leaves the targets as they were.
    _rewrite(two_targets, "targets: [")
    accept(services, _request("c1", "agent-c", tags=LONG))
    assert services.store.get("c1").target == "c"


def test_a_rollout_drains_its_own_target_only(services, two_targets):
    from worker.jobs.rollout_intake import accept_rollout

    judge = "judge-a1b2c3d4e5"
    rollout = {"request_id": "roll", "producer": "quality", "evaluator_id": judge,
               "update": {"description": "v2"}}  # fmt: skip
    assert accept_rollout(services, rollout).outcome == "rejected"  # no target, no default
    assert services.dead_letters.find()[0].reason == "no_target"
    assert accept_rollout(services, {**rollout, "target": "b"}).outcome == "created"
    for request_id, service in (("a0", "agent-a"), ("b0", "agent-b")):
        request = _request(request_id, service, tags=LONG)
        request["evaluation"]["evaluators"] = [{"evaluatorId": judge}]
        accept(services, request)
    assert services.store.get("a0").state == JobState.ADMITTED  # target a does not drain
    assert services.store.get("b0").state == JobState.QUEUED  # held in target b


def test_a_tick_works_only_on_the_targets_that_have_work(services, two_targets, clock):
    from worker.jobs.admission import tick

    accept(services, _request("a-1", "agent-a", LONG))
    services.watched.clear()
    services.dispatched.clear()
    # Target a: one job in its slot (watched); target b: nothing at all.
    work = services.store.survey({"a": 1, "b": 2}, now=clock())
    assert (work["a"].slot_holders, work["a"].admit, work["a"].overdue) == (1, False, False)
    assert (work["b"].slot_holders, work["b"].admit, work["b"].overdue) == (0, False, False)
    tick(services)
    assert services.watched == ["a"]  # no watch, and no listing, for idle b

    accept(services, _request("a-2", "agent-a"))  # waits: a's one slot is held
    work = services.store.survey({"a": 1, "b": 2}, now=clock())
    assert (work["a"].slot_holders, work["a"].admit) == (1, False)
    accept(services, _request("b-1", "agent-b"))
    assert services.store.get("b-1").state == JobState.ADMITTED  # admitted at intake
    clock.advance(10**6)  # a-2's deadline passes in the backlog
    assert services.store.survey({"a": 1}, now=clock())["a"].overdue
    tick(services)
    assert services.store.get("a-2").state == JobState.FINISHED  # expired by the tick
