"""Scenario runs over fakeredis and the in-process emulator (real boto3 over HTTP): items
invoked once each under the target's bound, attempts that die run again under a new
session id, the ingestion delay on the timer, then one batch naming exactly the ended
sessions."""

from __future__ import annotations

import json
import urllib.request
from types import SimpleNamespace

import fakeredis.commands_mixins.server_mixin

from api_contracts.examples import sample_scenario_request
from tests.unit.conftest import reconfigure
from tests.unit.driving import run_until
from worker.backends.agentcore import session_id
from worker.jobs.advance import advance
from worker.jobs.intake import accept
from worker.jobs.invocations import invoke
from worker.jobs.items_store import CallResult, Invocation, ScenarioItems
from worker.jobs.scenarios import stale_after
from worker.jobs.states import JobState, Move
from worker.jobs.store import Ref


def _control(emulator, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emulator.url + "/_emulator/" + path, data=data,
                                     method="GET" if data is None else "POST")  # fmt: skip
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def _submit(services, prompts=("a", "b", "c"), delay=0, request_id="r1", **overrides):
    request = sample_scenario_request(
        request_id, prompts=tuple(prompts), ingestion_delay_seconds=delay, **overrides
    )
    return accept(services, request)


def _invoke_all(services) -> list[str]:
    """Run every evals.invoke sent so far (and those they send), as workers would."""
    results = []
    while services.invoked:
        request_id, index, attempt, _countdown = services.invoked.pop(0)
        results.append(invoke(services, request_id, index, attempt))
    return results


def _sessions(emulator):
    return {s["session_id"]: s for s in _control(emulator, "sessions")}


def test_each_item_is_invoked_once_then_exactly_those_sessions_are_evaluated(
    services, clock, emulator
):
    result = _submit(services)
    assert (result.outcome, result.state) == ("created", "PREPARING")
    assert services.dispatched == [("r1", None, 0.0)]
    assert services.store.backlog_size("default") == 0

    assert advance(services, "r1") == "running_items"
    assert [(r, i, a) for r, i, a, _ in services.invoked] == [("r1", 0, 0), ("r1", 1, 0),
                                                              ("r1", 2, 0)]  # fmt: skip
    assert _invoke_all(services) == ["ended"] * 3
    assert advance(services, "r1") == "enqueued"
    job = services.store.get("r1")
    assert job.state == JobState.ADMITTED  # admitted at once: a slot was free
    assert services.redis.exists(services.keys.scenario_items("r1")) == 0

    job = run_until(services, "r1", JobState.PUBLISHED, clock)
    ((outcome, queues),) = services.publisher.published
    assert queues == ["evals.results"]
    ids = [session_id("r1", i, 0) for i in range(3)]
    assert [(s.index, s.scenario_id, s.session_id, s.stop_reason, s.attempts, s.error)
            for s in outcome.scenarios] == [
        (i, f"scenario-{i + 1}", ids[i], "end_turn", 1, None) for i in range(3)
    ]  # fmt: skip
    (remote,) = _control(emulator, "jobs")
    assert remote["sessions_named"] == ids
    assert remote["sessions_found"] == ids
    assert remote["test_scenario_ids"] == {ids[i]: f"scenario-{i + 1}" for i in range(3)}
    stats = _control(emulator, "stats")
    assert stats["calls"]["InvokeHarness"] == 3
    assert set(stats["harness"]["calls_by_session"].values()) == {1}
    assert outcome.result["evaluationResults"]["totalNumberOfSessions"] == 3


def test_each_call_carries_the_run_s_overrides_with_the_item_s_in_their_place(services, emulator):
    request = sample_scenario_request("r1", prompts=("a", "b"), ingestion_delay_seconds=0)
    run = request["scenarios"]
    run["model"] = {"bedrockModelConfig": {"modelId": "model-a", "temperature": 0.5}}
    run["systemPrompt"] = [{"text": "Be brief."}]
    run["items"][1]["model"] = {"bedrockModelConfig": {"modelId": "model-b"}}
    run["items"][1]["runtimeUserId"] = "user-7"
    accept(services, request)
    advance(services, "r1")
    assert _invoke_all(services) == ["ended"] * 2
    sessions = _sessions(emulator)
    first, second = (sessions[session_id("r1", i, 0)]["invocations"][0] for i in range(2))
    assert first["overrides"] == {"model": run["model"], "systemPrompt": run["systemPrompt"]}
    assert second["overrides"] == {
        "model": {"bedrockModelConfig": {"modelId": "model-b"}},
        "systemPrompt": run["systemPrompt"],
        "runtimeUserId": "user-7",
    }


def test_a_redelivered_invocation_never_calls_again(services, emulator):
    _submit(services, prompts=("a",))
    advance(services, "r1")
    ((request_id, index, attempt, _),) = services.invoked
    assert invoke(services, request_id, index, attempt) == "ended"
    assert invoke(services, request_id, index, attempt) == "taken"
    assert _control(emulator, "stats")["calls"]["InvokeHarness"] == 1


def test_a_claimed_attempt_that_falls_silent_runs_again_under_a_new_session(
    services, clock, emulator
):
    _submit(services, prompts=("a", "b"))
    advance(services, "r1")
    items = ScenarioItems(services.store)
    # A worker claims item 0 and is killed before its call ends: no record, no heartbeat.
    services.invoked[:] = [c for c in services.invoked if c[1] != 0]
    dead = Invocation("r1", 0, 0)
    assert items.claim(dead, "default", session_id=session_id("r1", 0, 0), now=clock()) == 0
    _invoke_all(services)
    assert advance(services, "r1") == "running_items"  # item 0 is still in flight
    assert services.invoked == []

    clock.advance(stale_after(services.settings) + 1)
    assert advance(services, "r1") == "running_items"
    assert [(r, i, a) for r, i, a, _ in services.invoked] == [("r1", 0, 1)]
    _invoke_all(services)
    # The dead attempt's late report changes nothing.
    assert not items.record(dead, "default", CallResult.ENDED, now=clock(), max_failures=3)
    assert advance(services, "r1") == "enqueued"
    run_until(services, "r1", JobState.PUBLISHED, clock)
    ((outcome, _),) = services.publisher.published
    assert [(s.session_id, s.attempts) for s in outcome.scenarios] == [
        (session_id("r1", 0, 1), 2),
        (session_id("r1", 1, 0), 1),
    ]
    (remote,) = _control(emulator, "jobs")
    assert remote["sessions_named"] == [session_id("r1", 0, 1), session_id("r1", 1, 0)]


def test_a_broken_stream_runs_again_under_a_new_session(services, clock, emulator):
    _submit(services, prompts=("flaky [emulator:break=once]", "fine"))
    advance(services, "r1")
    assert _invoke_all(services) == ["interrupted", "ended"]
    clock.advance(60)  # past the retry's backoff
    assert advance(services, "r1") == "running_items"
    assert _invoke_all(services) == ["ended"]
    assert advance(services, "r1") == "enqueued"
    job = services.store.get("r1")
    assert [(s["session_id"], s["attempts"], s["error"]) for s in job.scenarios] == [
        (session_id("r1", 0, 1), 2, None),
        (session_id("r1", 1, 0), 1, None),
    ]
    broken = _sessions(emulator)[session_id("r1", 0, 0)]
    assert [i["outcome"] for i in broken["invocations"]] == ["broken"]


def test_an_item_out_of_retries_is_left_out_and_reported(services, clock, emulator):
    reconfigure(services, scenario_item_retries=1)
    _submit(services, prompts=("[emulator:break=always]", "fine"))
    advance(services, "r1")
    _invoke_all(services)
    clock.advance(60)
    advance(services, "r1")
    assert _invoke_all(services) == ["interrupted"]  # its last retry
    assert advance(services, "r1") == "enqueued"
    run_until(services, "r1", JobState.PUBLISHED, clock)
    ((outcome, _),) = services.publisher.published
    assert outcome.status == "COMPLETED"
    failed, ended = outcome.scenarios
    assert (failed.session_id, failed.stop_reason, failed.attempts) == (
        session_id("r1", 0, 1), None, 2,
    )  # fmt: skip
    assert "the stream broke" in failed.error
    assert ended.error is None
    (remote,) = _control(emulator, "jobs")
    assert remote["sessions_named"] == [session_id("r1", 1, 0)]


def test_a_run_whose_every_item_fails_finishes_failed_with_the_reasons(services, clock, emulator):
    _submit(services, prompts=("[emulator:error=validationException]",) * 2)
    advance(services, "r1")
    assert _invoke_all(services) == ["failed", "failed"]
    assert advance(services, "r1") == "published"
    job = services.store.get("r1")
    assert (job.state, job.outcome_status) == (JobState.PUBLISHED, "FAILED")
    ((outcome, _),) = services.publisher.published
    assert outcome.error.startswith("every scenario item failed (2); items 0: remote_validation")
    assert "items 1: remote_validation" in outcome.error
    assert outcome.batch_evaluation_id is None
    assert [s.attempts for s in outcome.scenarios] == [1, 1]
    assert _control(emulator, "jobs") == []


def test_the_ingestion_delay_waits_on_the_timer(services, clock, emulator):
    _submit(services, prompts=("a",), delay=120)
    advance(services, "r1")
    _invoke_all(services)
    assert advance(services, "r1") == "ingesting"
    ended_at = ScenarioItems(services.store).states("r1")[0]["ended_at"]
    assert services.store.due_score("r1") == ended_at + 120
    clock.advance(119)
    assert advance(services, "r1") == "ingesting"
    clock.advance(2)
    assert advance(services, "r1") == "enqueued"


def test_a_run_at_its_deadline_expires_without_a_batch(services, clock, emulator):
    _submit(services, prompts=("a", "b"), deadline_seconds=60)
    advance(services, "r1")
    services.invoked.clear()  # the calls never end
    clock.advance(61)
    assert advance(services, "r1") == "published"
    ((outcome, _),) = services.publisher.published
    assert outcome.status == "EXPIRED"
    assert [s.error for s in outcome.scenarios] == ["not finished by the deadline"] * 2
    # A late task of the expired run does not call.
    assert invoke(services, "r1", 0, 0) == "gone"
    assert _control(emulator, "stats")["calls"].get("InvokeHarness", 0) == 0


def test_calls_in_flight_are_bounded_per_target_and_shared_round_robin(services, clock, emulator):
    reconfigure(services, max_invocations=2)
    _submit(services, prompts=("a1", "a2", "a3"), request_id="ra")
    _submit(services, prompts=("b1", "b2"), request_id="rb")
    advance(services, "ra")
    advance(services, "rb")
    assert [(r, i) for r, i, _, _ in services.invoked] == [("ra", 0), ("ra", 1)]
    first = services.invoked.pop(0)
    invoke(services, *first[:3])
    # The freed place goes to the lowest index waiting in the target: rb's first item.
    assert [(r, i) for r, i, _, _ in services.invoked] == [("ra", 1), ("rb", 0)]
    in_flight = services.redis.zcard(services.keys.target("default").invocations)
    assert in_flight == 2


def test_a_call_the_shared_rate_refuses_is_sent_again_later(services, clock, emulator, monkeypatch):
    # One call per 4 s, on Redis's clock: fakeredis's TIME is the test's clock here.
    monkeypatch.setattr(fakeredis.commands_mixins.server_mixin, "time", SimpleNamespace(time=clock))
    reconfigure(services, invoke_rate=0.25)
    assert services.targets["default"].backend.harness is not None
    _submit(services, prompts=("a", "b"))
    advance(services, "r1")
    first, second = services.invoked
    services.invoked.clear()
    assert invoke(services, *first[:3]) == "ended"
    assert invoke(services, *second[:3]) == "rate_limited"
    ((request_id, index, attempt, countdown),) = [c for c in services.invoked if c[1] == 1]
    assert (request_id, index, attempt) == ("r1", 1, 0)
    assert 0 < countdown <= 4.2
    clock.advance(countdown)
    assert invoke(services, "r1", 1, 0) == "ended"


def test_a_run_that_died_while_its_items_ran_is_replayed_into_its_items(services, clock, emulator):
    _submit(services, prompts=("a", "b"))
    advance(services, "r1")
    ((r, i, a, _), _second) = services.invoked
    services.invoked.clear()
    assert invoke(services, r, i, a) == "ended"
    job = services.store.get("r1")
    assert services.store.transition(Ref("r1", "default"), Move.DEAD_LETTER, from_state=job.state)
    again = _submit(services, prompts=("a", "b"))
    assert (again.outcome, again.state) == ("requeued", "PREPARING")
    services.invoked.clear()
    clock.advance(services.settings.lease_seconds + 1)  # item 1's task was lost
    advance(services, "r1")
    assert [(r, i, a) for r, i, a, _ in services.invoked] == [("r1", 1, 0)]
    _invoke_all(services)
    assert advance(services, "r1") == "enqueued"
    assert [s["attempts"] for s in services.store.get("r1").scenarios] == [1, 1]


def test_a_duplicate_of_a_running_scenario_request_changes_nothing(services, emulator):
    _submit(services)
    advance(services, "r1")
    again = _submit(services)
    assert (again.outcome, again.state) == ("duplicate", "PREPARING")
    assert services.dispatched == [("r1", None, 0.0)]
