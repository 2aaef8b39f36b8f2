"""Evaluator rollouts over fakeredis and the in-process emulator (real boto3 over HTTP):
registration once, the drain (admission passes over jobs that use the evaluator and keeps
them in order), UpdateEvaluator after the last running user ended, GetEvaluator until it
settles, dead letters with their reasons."""

from __future__ import annotations

import json
import urllib.request

import pytest

from api_contracts import ReasonCode
from evalq_emulators.pytest_plugin import SAMPLE_JUDGE
from tests.unit.conftest import reconfigure
from tests.unit.driving import advance_until, run_until, submit
from worker.backends.agentcore import client_token, make_control_client
from worker.backends.agentcore.evaluators import EvaluatorClient
from worker.jobs.advance import advance
from worker.jobs.rollout_intake import accept_rollout
from worker.jobs.states import JobState

JUDGE = SAMPLE_JUDGE  # the emulator plugin's sample judge
ROLE = "arn:aws:iam::123456789012:role/evaluations"


def _control(emulator, path):
    with urllib.request.urlopen(emulator.url + "/_emulator/" + path) as response:
        return json.loads(response.read())


@pytest.fixture
def control_plane(settings):
    return make_control_client(settings)


@pytest.fixture
def judge(control_plane, clock) -> str:
    return _create(control_plane, clock, "judge")


def _create(control_plane, clock, name, **kw) -> str:
    out = control_plane.create_evaluator(
        evaluatorName=name, evaluatorConfig=JUDGE, level="SESSION", **kw
    )
    evaluator_id = str(out["evaluatorId"])
    advance_until(
        clock, lambda: control_plane.get_evaluator(evaluatorId=evaluator_id)["status"] == "ACTIVE"
    )
    return evaluator_id


def _rollout(evaluator_id, request_id="roll-1", **overrides):
    request = {
        "schema_version": 1,
        "request_id": request_id,
        "producer": "quality",
        "evaluator_id": evaluator_id,
        "update": {"description": "v2: cites sources"},
        "reply_to": ["quality.rollouts"],
        "correlation": {"ticket": "Q-12"},
    }
    request.update(overrides)
    return request


def _uses(evaluator_id):
    return {"evaluators": [{"evaluatorId": evaluator_id}],
            "dataSourceConfig": {"cloudWatchLogs": {
                "serviceNames": ["demo-agent"], "logGroupNames": ["/aws/agent"]}}}  # fmt: skip


def _submit_using(services, request_id, evaluator_id, producer="p"):
    return submit(services, request_id=request_id, producer=producer,
                  evaluation=_uses(evaluator_id))  # fmt: skip


def _update_calls(emulator, evaluator_id):
    (view,) = [e for e in _control(emulator, "evaluators") if e["evaluatorId"] == evaluator_id]
    return view["update_calls"]


def _draining(services):
    return services.redis.hgetall(services.keys.target("default").draining_evaluators)


def test_a_drained_rollout_updates_after_its_last_running_user_and_holds_new_ones(
    services, clock, emulator, judge
):
    _submit_using(services, "uses-1", judge)
    assert advance(services, "uses-1") == "started"

    result = accept_rollout(services, _rollout(judge))
    assert (result.outcome, result.state) == ("created", "DRAINING")
    assert _draining(services) == {judge: "1"}
    assert advance(services, "roll-1") == "draining"  # uses-1 still runs

    # Admission passes over a job using the judge and admits one that does not.
    _submit_using(services, "uses-2", judge)
    _submit_using(services, "other-1", "Builtin.Helpfulness", producer="q")
    assert services.store.get("uses-2").state == JobState.QUEUED
    assert services.store.get("other-1").state == JobState.ADMITTED
    assert services.redis.lrange(services.keys.target("default").held, 0, -1) == ["uses-2"]
    assert _update_calls(emulator, judge) == []

    run_until(services, "uses-1", JobState.PUBLISHED, clock)
    assert services.store.get("uses-2").state == JobState.QUEUED  # still held
    assert advance(services, "roll-1") == "update_called"
    (call,) = _update_calls(emulator, judge)
    assert call["clientToken"] == client_token("roll-1")
    assert services.store.get("roll-1").state == JobState.UPDATING
    assert services.store.get("uses-2").state == JobState.QUEUED  # held until ACTIVE

    job = run_until(services, "roll-1", JobState.PUBLISHED, clock)
    assert job.outcome_status == "UPDATED"
    assert _draining(services) == {}
    assert services.store.get("uses-2").state == JobState.ADMITTED  # released at once
    outcome, queues = services.publisher.published[-1]
    assert queues == ["evals.evaluator-updates", "quality.rollouts"]
    assert (outcome.request_id, outcome.evaluator_id, outcome.status) == (
        "roll-1", judge, "UPDATED",
    )  # fmt: skip
    assert outcome.evaluator["description"] == "v2: cites sources"
    assert outcome.update_called_at <= outcome.active_at
    assert outcome.correlation == {"ticket": "Q-12"}
    assert outcome.error is None


def test_held_jobs_keep_their_order_and_others_pass_them_fairly(services, clock, emulator, judge):
    accept_rollout(services, _rollout(judge))  # nothing uses it yet: it is not advanced
    for request_id in ("a-uses-1", "a-uses-2"):
        _submit_using(services, request_id, judge, producer="a")
    _submit_using(services, "a-other", "Builtin.Helpfulness", producer="a")
    _submit_using(services, "b-other", "Builtin.Helpfulness", producer="b")
    admitted = {j.request_id for j in services.store.iter_jobs() if j.state == "ADMITTED"}
    assert admitted == {"a-other", "b-other"}  # the quota (2) holds
    assert services.store.backlog_size("default") == 2

    run_until(services, "roll-1", JobState.PUBLISHED, clock)
    backlog = services.keys.target("default").backlog("a", 0)
    assert services.redis.lrange(backlog, 0, -1) == ["a-uses-1", "a-uses-2"]
    run_until(services, "a-other", JobState.PUBLISHED, clock)
    assert services.store.get("a-uses-1").state == JobState.ADMITTED
    assert services.store.get("a-uses-2").state == JobState.QUEUED


def test_without_drain_the_update_is_called_at_once(services, emulator, judge):
    _submit_using(services, "uses-1", judge)
    advance(services, "uses-1")
    accept_rollout(services, _rollout(judge, drain=False))
    assert _draining(services) == {}
    assert advance(services, "roll-1") == "update_called"
    _submit_using(services, "uses-2", judge)
    assert services.store.get("uses-2").state == JobState.ADMITTED


def test_a_locked_evaluator_is_a_dead_letter_naming_the_lock_and_releases_the_drain(
    services, emulator, judge, control_plane
):
    out = control_plane.create_online_evaluation_config(
        onlineEvaluationConfigName="prod_watch",
        rule={"samplingConfig": {"samplingPercentage": 10.0}},
        dataSourceConfig=_uses(judge)["dataSourceConfig"],
        evaluators=[{"evaluatorId": judge}],
        evaluationExecutionRoleArn=ROLE,
        enableOnCreate=True,
    )
    config_id = out["onlineEvaluationConfigId"]
    accept_rollout(services, _rollout(judge))
    _submit_using(services, "uses-1", judge)
    assert services.store.get("uses-1").state == JobState.QUEUED  # held by the drain

    assert advance(services, "roll-1") == "dead"
    (letter,) = services.dead_letters.iter()
    assert letter.reason == ReasonCode.evaluator_locked
    assert f"prod_watch ({config_id})" in letter.error
    assert letter.request["evaluator_id"] == judge
    assert _draining(services) == {}
    assert services.store.get("uses-1").state == JobState.ADMITTED  # released
    assert _update_calls(emulator, judge) == []


def test_an_unknown_evaluator_is_an_invalid_request_with_the_services_message(services, emulator):
    accept_rollout(services, _rollout("ghost-abcdefghij"))
    assert advance(services, "roll-1") == "dead"
    (letter,) = services.dead_letters.iter()
    assert letter.reason == ReasonCode.invalid_request
    assert letter.error == "Evaluator ghost-abcdefghij not found"


def test_a_builtin_evaluator_is_refused_before_any_call(services, emulator):
    result = accept_rollout(services, _rollout("Builtin.Helpfulness"))
    assert result.outcome == "rejected"
    (letter,) = services.dead_letters.iter()
    assert letter.reason == ReasonCode.invalid_request
    assert "cannot be updated" in letter.error
    assert letter.task_name == "evals.evaluator.update"
    assert services.store.get("roll-1") is None
    calls = _control(emulator, "stats")["calls"]
    assert calls.get("GetEvaluator", 0) == calls.get("UpdateEvaluator", 0) == 0


def test_a_rollout_is_registered_once_per_request_id(services, emulator, judge):
    assert accept_rollout(services, _rollout(judge)).outcome == "created"
    assert accept_rollout(services, _rollout(judge)).outcome == "duplicate"
    other = accept_rollout(services, _rollout(judge, update={"description": "v3"}))
    assert other.outcome == "conflict"
    (letter,) = services.dead_letters.iter()
    assert letter.reason == ReasonCode.idempotency_conflict
    assert _draining(services) == {judge: "1"}


def test_update_failed_ends_the_rollout_and_the_drain(services, clock, emulator, control_plane):
    judge = _create(
        control_plane, clock, "flaky", tags={"emulator:update-outcome": "UPDATE_FAILED"}
    )
    accept_rollout(services, _rollout(judge))
    job = run_until(services, "roll-1", JobState.PUBLISHED, clock)
    assert job.outcome_status == "UPDATE_FAILED"
    outcome, _ = services.publisher.published[-1]
    assert outcome.status == "UPDATE_FAILED"
    assert outcome.active_at is None
    assert "ended UPDATE_FAILED" in outcome.error
    assert _draining(services) == {}


def test_a_rollout_names_its_target_or_goes_to_the_default(services, emulator, judge):
    result = accept_rollout(services, _rollout(judge, target="elsewhere"))
    assert result.outcome == "rejected"
    (letter,) = services.dead_letters.iter()
    assert letter.reason == ReasonCode.no_target
    assert accept_rollout(services, _rollout(judge, "roll-2", target="default")).outcome == (
        "created"
    )
    assert services.store.get("roll-2").target == "default"


def test_a_replayed_locked_rollout_drains_again(services, clock, emulator, judge, control_plane):
    config = control_plane.create_online_evaluation_config(
        onlineEvaluationConfigName="watch",
        rule={"samplingConfig": {"samplingPercentage": 10.0}},
        dataSourceConfig=_uses(judge)["dataSourceConfig"],
        evaluators=[{"evaluatorId": judge}],
        evaluationExecutionRoleArn=ROLE,
        enableOnCreate=True,
    )
    accept_rollout(services, _rollout(judge))
    assert advance(services, "roll-1") == "dead"
    clock.advance(1)  # the config is created (1 emulated second)
    control_plane.update_online_evaluation_config(
        onlineEvaluationConfigId=config["onlineEvaluationConfigId"], executionStatus="DISABLED"
    )
    advance_until(
        clock, lambda: not control_plane.get_evaluator(evaluatorId=judge)["lockedForModification"]
    )
    again = accept_rollout(services, _rollout(judge))
    assert (again.outcome, again.state) == ("requeued", "DRAINING")
    assert _draining(services) == {judge: "1"}
    reconfigure(services)  # a fresh process: no cached answers
    job = run_until(services, "roll-1", JobState.PUBLISHED, clock)
    assert job.outcome_status == "UPDATED"


def test_a_dead_lettered_rollout_is_replayed_to_its_own_task(services, emulator, judge):
    from worker.dead_letters import replay

    accept_rollout(services, _rollout("Builtin.Helpfulness", "roll-b"))
    services.dead_letters.record(
        reason=ReasonCode.evaluator_locked, error="locked", request=_rollout(judge),
        request_id="roll-1", now=1.0,
    )  # fmt: skip
    candidates, _ = replay.select(services.dead_letters, services.store, everything=True)
    assert {replay.intake_task(c.request) for c in candidates} == {"evals.evaluator.update"}
    assert replay.intake_task({"request_id": "r", "evaluation": {}}) == "evals.submit"


def test_a_rollout_waits_while_another_update_of_its_evaluator_runs(
    services, clock, emulator, control_plane
):
    # 20,000 emulated s at 10,000x: each update stays UPDATING for 2 s on the clock.
    judge = _create(control_plane, clock, "slow", tags={"emulator:update-duration": "20000"})
    accept_rollout(services, _rollout(judge, "roll-1"))
    assert advance(services, "roll-1") == "update_called"
    accept_rollout(services, _rollout(judge, "roll-2", update={"description": "v3"}))
    assert advance(services, "roll-2") == "waiting"
    assert advance(services, "roll-2") == "waiting"
    job = services.store.get("roll-2")
    assert (job.state, job.attempts, job.remote_status) == (JobState.DRAINING, 0, "UPDATING")
    assert len(_update_calls(emulator, judge)) == 1
    advance_until(
        clock, lambda: control_plane.get_evaluator(evaluatorId=judge)["status"] == "ACTIVE"
    )
    assert advance(services, "roll-2") == "update_called"
    assert len(_update_calls(emulator, judge)) == 2


def test_an_active_read_from_before_the_update_does_not_end_the_rollout(
    services, clock, emulator, judge, monkeypatch
):
    # The service's reads may lag its writes: a GetEvaluator right after UpdateEvaluator
    # can still show the old judge, ACTIVE, with the old updatedAt.
    before = services.targets["default"].backend.evaluators.get(judge)
    accept_rollout(services, _rollout(judge, drain=False))
    assert advance(services, "roll-1") == "update_called"
    real_get = EvaluatorClient.get
    stale_reads = [before]

    def get(self, evaluator_id):
        return stale_reads.pop() if stale_reads else real_get(self, evaluator_id)

    monkeypatch.setattr(EvaluatorClient, "get", get)

    assert before["status"] == "ACTIVE"
    assert advance(services, "roll-1") == "polled"  # not UPDATED on the old judge
    assert services.store.get("roll-1").state == JobState.UPDATING
    job = run_until(services, "roll-1", JobState.PUBLISHED, clock)
    assert job.outcome_status == "UPDATED"
    outcome, _ = services.publisher.published[-1]
    assert outcome.evaluator["description"] == "v2: cites sources"


def _faults(emulator, body):
    request = urllib.request.Request(
        emulator.url + "/_emulator/faults", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def test_a_full_quota_on_update_waits_on_the_rollouts_timer_then_ends_update_failed(
    services, clock, emulator, judge
):
    reconfigure(services, rollout_quota_max_waits=3)
    _faults(emulator, {"errors": {"ServiceQuotaExceededException": 1.0},
                       "operations": ["UpdateEvaluator"]})  # fmt: skip
    accept_rollout(services, _rollout(judge))
    delays = []
    for waits in (1, 2, 3):
        assert advance(services, "roll-1") == "quota_full"
        job = services.store.get("roll-1")
        assert (job.state, job.quota_waits) == (JobState.DRAINING, waits)
        delays.append(services.store.due_score("roll-1") - clock())
        clock.advance(delays[-1])
    assert delays == [5.0, 10.0, 20.0]  # quota_backoff, doubling

    assert advance(services, "roll-1") == "published"

    outcome, queues = services.publisher.published[-1]
    assert (outcome.status, queues[0]) == ("UPDATE_FAILED", "evals.evaluator-updates")
    assert "quota stayed full: refused 4 times" in outcome.error
    assert services.store.get("roll-1").state == JobState.PUBLISHED
    assert services.dead_letters.find() == []
    assert _draining(services) == {}
    assert len(_update_calls(emulator, judge)) == 0  # every call refused before it took


@pytest.mark.parametrize(
    ("tag", "status"),
    [("emulator:create-outcome", "CREATE_FAILED"), ("emulator:delete-duration", "DELETING")],
)
def test_an_evaluator_that_can_never_be_active_ends_a_draining_rollout(
    services, clock, emulator, control_plane, tag, status
):
    value = "CREATE_FAILED" if status == "CREATE_FAILED" else "1000000000"
    evaluator = control_plane.create_evaluator(
        evaluatorName="doomed", evaluatorConfig=JUDGE, level="SESSION", tags={tag: value}
    )["evaluatorId"]
    advance_until(
        clock, lambda: control_plane.get_evaluator(evaluatorId=evaluator)["status"] != "CREATING"
    )
    if status == "DELETING":
        control_plane.delete_evaluator(evaluatorId=evaluator)
    assert control_plane.get_evaluator(evaluatorId=evaluator)["status"] == status
    accept_rollout(services, _rollout(evaluator))

    assert advance(services, "roll-1") == "published"

    outcome, _ = services.publisher.published[-1]
    assert outcome.status == "UPDATE_FAILED"
    assert f"is {status}: it can never become ACTIVE" in outcome.error
    assert _update_calls(emulator, evaluator) == []
    assert _draining(services) == {}


def test_an_evaluator_deleted_while_it_updates_ends_the_rollout(
    services, clock, emulator, control_plane
):
    slow = {"emulator:update-duration": "20000", "emulator:delete-duration": "1000000000"}
    evaluator = _create(control_plane, clock, "deleted", tags=slow)
    accept_rollout(services, _rollout(evaluator, drain=False))
    assert advance(services, "roll-1") == "update_called"
    advance_until(
        clock, lambda: control_plane.get_evaluator(evaluatorId=evaluator)["status"] != "UPDATING"
    )
    control_plane.delete_evaluator(evaluatorId=evaluator)

    assert advance(services, "roll-1") == "published"

    outcome, _ = services.publisher.published[-1]
    assert outcome.status == "UPDATE_FAILED"
    assert "is DELETING: it can never become ACTIVE" in outcome.error


def test_every_evaluator_status_of_the_service_model_is_sorted_by_rollouts():
    import boto3

    from worker.jobs.rollouts import BUSY_STATUSES, DEAD_END_STATUSES

    model = boto3.client("bedrock-agentcore-control", region_name="us-east-1").meta.service_model
    statuses = set(model.shape_for("EvaluatorStatus").enum)
    settled = {"ACTIVE", "UPDATE_FAILED"}
    assert statuses == settled | BUSY_STATUSES | DEAD_END_STATUSES
    assert not (BUSY_STATUSES & DEAD_END_STATUSES)
