"""The janitor's sweep over fakeredis and the in-process emulator (real boto3 over HTTP).

The test clock starts at the real time here: the emulator stamps remote jobs with real
epochs, and orphan retention is measured from them.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from api_contracts import EvaluationRequest, ReasonCode
from api_contracts.examples import sample_request
from tests.unit.conftest import reconfigure
from tests.unit.driving import advance_until, run_until, submit
from worker.backends.agentcore import client_token, derive_job_name
from worker.backends.ratelimit import SharedRateLimits
from worker.backends.registry import rates_of
from worker.janitor import sweep as janitor
from worker.jobs import moves
from worker.jobs.admission import tick
from worker.jobs.advance import advance
from worker.jobs.remote import start_spec
from worker.jobs.states import JobState, Move
from worker.jobs.store import Ref
from worker.keys import TargetKeys

LONG = {"emulator:duration": "1000000000000"}  # runs for ages of emulated time


def _start_directly(svc, name, tags=None):
    """A remote job started by someone else with boto3, under ``name``."""
    evaluation = EvaluationRequest.model_validate(sample_request()).evaluation
    params = evaluation.to_boto3_kwargs() | {"batchEvaluationName": name}
    params["tags"] = tags or LONG
    client = svc.targets["default"].backend.client
    started = client.start_batch_evaluation(clientToken=f"other-{uuid.uuid4().hex}", **params)
    return started["batchEvaluationId"]


def _remote(emulator):
    with urllib.request.urlopen(emulator.url + "/_emulator/jobs") as response:
        return {job["batchEvaluationId"]: job for job in json.loads(response.read())}


def _published(svc):
    return {outcome.request_id: outcome for outcome, _ in svc.publisher.published}


# -- backlog deadlines ----------------------------------------------------------------------
def test_the_deadline_index_follows_the_backlog(services, keys, clock):
    for i in range(3):
        submit(services, f"r{i}", deadline_seconds=100 + i)
    indexed = dict(
        services.redis.zrange(keys.target("default").queued_by_deadline, 0, -1, withscores=True)
    )
    assert indexed == {"r2": pytest.approx(clock() + 102)}  # r0, r1 took the two slots

    services.store.requeue(services.store.get("r0"), now=clock(), pause_until=clock())
    assert services.redis.zscore(keys.target("default").queued_by_deadline, "r0") == pytest.approx(
        clock() + 100
    )


def test_a_request_past_its_deadline_in_the_backlog_expires_at_the_next_tick(
    services, clock, emulator
):
    submit(services, "busy-1", tags=LONG, deadline_seconds=3600)
    submit(services, "busy-2", tags=LONG, deadline_seconds=3600)
    submit(services, "waiting", deadline_seconds=30)
    submit(services, "other", producer="q", deadline_seconds=3600)
    clock.advance(31)
    services.dispatched.clear()

    tick(services)

    assert ("waiting", None, 0.0) in services.dispatched
    assert advance(services, "waiting") == "published"
    outcome = _published(services)["waiting"]
    assert (outcome.status, outcome.batch_evaluation_id) == ("EXPIRED", None)
    assert client_token("waiting") not in {j["clientToken"] for j in _remote(emulator).values()}
    # The expired id left in its backlog does not stop the ring: "other" is admitted next.
    services.store.transition(Ref("busy-1", "default"), Move.DEAD_LETTER, clear_due=True)
    assert moves.admit(services, "default") == ["other"]


def test_sweep_expires_the_backlog_and_a_dry_run_only_plans(services, clock):
    for i in range(3):
        submit(services, f"r{i}", tags=LONG, deadline_seconds=30 if i == 2 else 3600)
    clock.advance(31)

    plan = janitor.sweep(services, dry_run=True)
    assert (plan.dry_run, plan.done["expired"]) == (True, ["r2"])
    assert services.store.get("r2").state == JobState.QUEUED

    report = janitor.sweep(services)
    assert report.done["expired"] == ["r2"]
    assert services.store.get("r2").outcome_status == "EXPIRED"
    assert janitor.sweep(services).done["expired"] == []


# -- timers and slots -----------------------------------------------------------------------
def test_a_slot_holder_without_a_timer_gets_one_and_a_slot_nobody_holds_is_freed(
    services, keys, clock
):
    submit(services, "r1", tags=LONG, deadline_seconds=30)
    advance(services, "r1")
    services.redis.zrem(keys.due, "r1")  # the timer got lost
    services.redis.sadd(keys.target("default").active, "ghost")  # a slot leaked

    report = janitor.sweep(services)

    assert (report.done["rearmed"], report.done["released"]) == (["r1"], ["ghost"])
    assert services.store.due_score("r1") is not None
    assert services.store.active_count("default") == 1
    clock.advance(31)  # past its deadline: the re-armed timer's step stops the job
    assert advance(services, "r1") == "stopping"


# -- record retention -----------------------------------------------------------------------
def test_records_are_trimmed_after_their_retention_unless_the_remote_job_is_kept(
    services, keys, clock
):
    services.settings.record_retention_seconds = 100
    submit(services, "old", retention_seconds=0)
    run_until(services, "old", JobState.DELETED, clock)
    submit(services, "kept", retention_seconds=100_000)
    run_until(services, "kept", JobState.PUBLISHED, clock)
    clock.advance(101)
    submit(services, "young", retention_seconds=0)
    run_until(services, "young", JobState.DELETED, clock)

    report = janitor.sweep(services)

    assert report.done["trimmed"] == ["old"]
    assert services.store.get("old") is None
    assert services.redis.zscore(keys.jobs_by_time, "old") is None
    assert set(services.redis.hvals(keys.target("default").remote_names)) == {"kept", "young"}
    assert services.store.get("young").state == JobState.DELETED
    assert services.store.get("kept").state == JobState.PUBLISHED
    assert janitor.sweep(services).done["trimmed"] == []


# -- reconciliation -------------------------------------------------------------------------
def test_orphans_are_stopped_then_deleted_after_retention_and_foreign_jobs_never(
    services, clock, emulator
):
    services.settings.default_retention_seconds = 60
    prefix = services.settings.job_name_prefix
    orphan = _start_directly(services, derive_job_name(prefix, "lost-request"))
    foreign = _start_directly(services, "someone_elses_job")
    finished_foreign = _start_directly(services, "finished_elsewhere", {"emulator:sessions": "1"})

    report = janitor.sweep(services)
    assert report.done["stopped"] == [orphan]
    _until_status(emulator, clock, orphan, "STOPPED")
    assert janitor.sweep(services).done["deleted"] == []  # inside its retention

    clock.advance(61)
    report = janitor.sweep(services)

    assert report.done["deleted"] == [orphan]
    remote = _remote(emulator)
    assert remote[orphan]["deleted_at"] is not None
    for untouched in (foreign, finished_foreign):
        assert remote[untouched]["stop_requested_at"] is None
        assert remote[untouched]["deleted_at"] is None


def test_a_request_sent_again_after_data_loss_adopts_its_running_job(
    services, fake_redis, emulator
):
    submit(services, "r1", tags=LONG)
    advance(services, "r1")
    original = services.store.get("r1").batch_evaluation_id
    fake_redis.flushall()  # the job store lost its data
    submit(services, "r1", tags=LONG)  # the producer sends the request again

    report = janitor.sweep(services)

    assert report.done["adopted"] == ["r1"]
    assert report.done["stopped"] == []
    job = services.store.get("r1")
    assert (job.state, job.batch_evaluation_id) == (JobState.RUNNING, original)
    assert advance(services, "r1") == "polled"
    assert len(_remote(emulator)) == 1


def test_a_dead_lettered_start_whose_job_exists_is_adopted(services, emulator):
    submit(services, "r1", tags=LONG)
    remote = services.targets["default"].backend.start(start_spec(services.store.get("r1")))
    # The start's answer was lost and the retries ran out: dead-lettered, no remote id.
    services.store.transition(Ref("r1", "default"), Move.DEAD_LETTER, clear_due=True)
    services.dead_letters.record(
        reason=ReasonCode.retries_exhausted, error="gave up", request={"request_id": "r1"},
        request_id="r1", now=services.clock(),
    )  # fmt: skip

    report = janitor.sweep(services)

    assert report.done["adopted"] == ["r1"]
    job = services.store.get("r1")
    assert (job.state, job.batch_evaluation_id) == (JobState.RUNNING, remote.id)
    assert services.store.active_count("default") == 1


def test_a_job_whose_remote_job_vanished_is_finished_and_published(services, clock, emulator):
    submit(services, "running", tags=LONG)
    advance(services, "running")
    submit(services, "published", retention_seconds=100_000)
    run_until(services, "published", JobState.PUBLISHED, clock)
    client = services.targets["default"].backend.client
    gone = services.store.get("running").batch_evaluation_id
    client.stop_batch_evaluation(batchEvaluationId=gone)
    clock.advance(1)  # the stop completes (3 emulated seconds)
    client.delete_batch_evaluation(batchEvaluationId=gone)
    client.delete_batch_evaluation(
        batchEvaluationId=services.store.get("published").batch_evaluation_id
    )
    clock.advance(1)

    report = janitor.sweep(services)

    assert sorted(report.done["resolved"]) == ["published", "running"]
    assert services.store.get("published").state == JobState.DELETED
    assert advance(services, "running") == "published"
    assert _published(services)["running"].status == "FAILED"


def test_near_the_high_water_mark_the_oldest_published_jobs_are_deleted_early(
    services, clock, emulator
):
    reconfigure(services, account_high_water=4)
    foreign = _start_directly(services, "foreign_done", {"emulator:sessions": "1"})
    for i in range(4):
        submit(services, f"r{i}", retention_seconds=100_000)
        run_until(services, f"r{i}", JobState.PUBLISHED, clock)
        clock.advance(1)

    report = janitor.sweep(services)  # 5 jobs, the mark is 4: two go (down to 3)

    assert report.remote_jobs == 5
    assert report.done["deleted_early"] == ["r0", "r1"]
    for request_id in ("r0", "r1"):
        assert advance(services, request_id) == "deleted"
    assert advance(services, "r2") == "waiting"
    remote = _remote(emulator)
    assert remote[foreign]["deleted_at"] is None
    assert sum(job["deleted_at"] is None for job in remote.values()) == 3


def test_stops_beyond_the_shared_rate_wait_for_the_next_sweep(services, settings, emulator):
    default = services.targets["default"]
    one_stop_per_10s = rates_of(default.config) | {"stop": 0.1}
    fast = default.rate_limits
    slow = SharedRateLimits(services.redis, one_stop_per_10s, TargetKeys("s"), 0.05)
    default.rate_limits = slow
    prefix = services.settings.job_name_prefix
    orphans = {_start_directly(services, derive_job_name(prefix, f"lost-{i}")) for i in range(3)}

    first = janitor.sweep(services)
    second = janitor.sweep(services)

    (stopped,) = first.done["stopped"]
    assert sorted(first.deferred) == sorted(f"stop:{i}" for i in orphans - {stopped})
    assert (second.done["stopped"], sorted(second.deferred)) == ([], sorted(first.deferred))
    assert [i for i, job in _remote(emulator).items() if job["stop_requested_at"]] == [stopped]
    default.rate_limits = fast
    assert set(janitor.sweep(services).done["stopped"]) == orphans - {stopped}


def test_only_one_janitor_sweeps_at_a_time(services, keys):
    held = services.redis.lock(keys.janitor_lock, timeout=30)
    assert held.acquire()
    assert janitor.sweep(services).skipped
    held.release()
    assert not janitor.sweep(services).skipped


def test_published_jobs_enter_the_retention_indexes_and_deleted_ones_leave_one(
    services, keys, clock
):
    submit(services, "r1", retention_seconds=0)
    job = run_until(services, "r1", JobState.PUBLISHED, clock)
    assert services.redis.zscore(keys.target("default").retained_by_time, "r1") == job.published_at
    assert services.redis.zscore(keys.target("default").published_by_time, "r1") == job.published_at

    assert advance(services, "r1") == "deleted"
    assert services.redis.zscore(keys.target("default").retained_by_time, "r1") is None
    assert services.redis.zscore(keys.target("default").published_by_time, "r1") == job.published_at


def test_cli_shows_the_plan_of_a_dry_run(services, clock, monkeypatch):
    from typer.testing import CliRunner

    import worker.runtime.root
    from worker.cli.main import app

    submit(services, "r1", tags=LONG, deadline_seconds=3600)
    submit(services, "r2", tags=LONG, deadline_seconds=3600)
    submit(services, "late", deadline_seconds=30)
    clock.advance(31)
    monkeypatch.setattr(worker.runtime.root, "services", lambda: services)

    table = CliRunner().invoke(app, ["janitor", "--dry-run"])
    as_json = CliRunner().invoke(app, ["janitor", "--dry-run", "--json"])

    assert table.exit_code == 0, table.output
    assert "dry run" in table.output
    assert "late" in table.output
    plan = json.loads(as_json.output)
    assert plan["expired"] == {"count": 1, "ids": ["late"]}
    assert plan["dry_run"] is True
    assert services.store.get("late").state == JobState.QUEUED


def _until_status(emulator, clock, remote_id, status):
    """Move the clock on until the remote job is in ``status`` (a stop takes 3 emulated
    seconds)."""
    advance_until(clock, lambda: _remote(emulator)[remote_id]["status"] == status)


def test_a_superseded_orphan_still_running_is_stopped_first_then_deleted(services, clock, emulator):
    submit(services, "r1", tags=LONG)
    advance(services, "r1")
    remote_id = services.store.get("r1").batch_evaluation_id
    # Dead-lettered while it ran (its Gets denied): its remote job runs on, nobody waits.
    services.store.transition(Ref("r1", "default"), Move.DEAD_LETTER, clear_due=True)

    first = janitor.sweep(services)

    assert (first.done["stopped"], first.done["deleted"], first.deferred) == ([remote_id], [], [])
    _until_status(emulator, clock, remote_id, "STOPPED")
    second = janitor.sweep(services)
    assert second.done["deleted"] == [remote_id]  # at once: no retention for it
    assert _remote(emulator)[remote_id]["deleted_at"] is not None
    assert janitor.sweep(services).done["deleted"] == []
