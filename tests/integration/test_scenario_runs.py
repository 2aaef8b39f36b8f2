"""Scenario runs end to end: a foreign producer, real ``evalq worker`` / ``evalq beat``
processes, a private redis-server and the emulator over HTTP. A session id is invoked at
most once, a worker SIGKILLed mid-stream costs its item one more attempt (under a new
session id), and one batch evaluation names exactly the sessions whose stream ended."""

from __future__ import annotations

import collections
import signal
import time

from api_contracts.examples import sample_scenario_request
from worker.backends.agentcore import session_id

ITEMS = 20
#: The emulator finds a session's traces 20 emulated s (0.5 s real at 40x) after its first
#: invocation; evalq waits 1 s after the last stream: a start before would miss sessions.
EMULATOR = ("--time-scale", "40", "--ingestion-seconds", "20")
#: A dead call is found after connect (1) + read (2) + settle (1) seconds of silence.
SHORT_CALLS = {
    "EVALQ_AWS_CONNECT_TIMEOUT": "1",
    "EVALQ_HARNESS_READ_TIMEOUT": "2",
    "EVALQ_CREATE_SETTLE_MARGIN": "1",
}


def _run(request_id: str, prompts: list[str]) -> dict:
    request = sample_scenario_request(
        request_id, "team-s", prompts=tuple(prompts), ingestion_delay_seconds=1
    )
    request["correlation"] = {"suite": "nightly"}
    request["evaluation"]["tags"] = {"emulator:duration": "40"}  # the batch runs 1 s
    return request


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _assert_one_batch_of_exactly(emulator, outcome, sessions: list[str]) -> None:
    (job,) = emulator.jobs()
    assert job["batchEvaluationId"] == outcome["batch_evaluation_id"]
    assert job["sessions_named"] == sessions
    assert job["sessions_found"] == sessions  # every one ingested when the batch started
    assert outcome["result"]["evaluationResults"]["totalNumberOfSessions"] == len(sessions)
    assert job["test_scenario_ids"] == {
        s["session_id"]: s["scenario_id"] for s in outcome["scenarios"]
    }


def test_twenty_items_give_twenty_sessions_one_batch_and_twenty_calls(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory(*EMULATOR)
    cluster = cluster_factory(emulator, EVALQ_MAX_INVOCATIONS="3")
    cluster.start_worker("w1", concurrency=3)
    cluster.start_beat()

    producer.submit(_run("run-20", [f"question {i}" for i in range(ITEMS)]))
    (outcome,) = producer.collect(1, timeout=90)

    assert outcome["status"] == "COMPLETED"
    assert outcome["correlation"] == {"suite": "nightly"}
    ids = [session_id("run-20", i, 0) for i in range(ITEMS)]
    assert [(s["index"], s["session_id"], s["stop_reason"], s["attempts"], s["error"])
            for s in outcome["scenarios"]] == [
        (i, ids[i], "end_turn", 1, None) for i in range(ITEMS)
    ]  # fmt: skip
    _assert_one_batch_of_exactly(emulator, outcome, ids)
    stats = emulator.stats()
    assert stats["calls"]["InvokeHarness"] == ITEMS
    assert stats["harness"]["sessions"] == ITEMS
    assert set(stats["harness"]["calls_by_session"].values()) == {1}
    assert stats["calls"]["StartBatchEvaluation"] == 1


def test_a_worker_killed_mid_stream_costs_its_item_one_attempt_and_nothing_else(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory(*EMULATOR)
    # One call in flight at a time, so the kill lands on exactly one stream: item 5's,
    # which lasts 100 emulated s (2.5 s real); the others last 75 ms.
    cluster = cluster_factory(emulator, EVALQ_MAX_INVOCATIONS="1", **SHORT_CALLS)
    doomed = cluster.start_worker("doomed", concurrency=2)
    cluster.start_beat()
    prompts = [f"question {i}" for i in range(ITEMS)]
    prompts[5] = "a long one [emulator:seconds=100]"
    producer.submit(_run("run-kill", prompts))

    slow = session_id("run-kill", 5, 0)

    def streaming() -> bool:
        found = [s for s in emulator.sessions() if s["session_id"] == slow]
        return bool(found) and found[0]["invocations"][0]["outcome"] is None

    _wait_for(streaming, 60, "item 5's stream to start")
    doomed.kill(signal.SIGKILL)
    _wait_for(lambda: not doomed.alive(), 10, "the worker to die")
    cluster.start_worker("survivor", concurrency=2)
    (outcome,) = producer.collect(1, timeout=120)

    assert outcome["status"] == "COMPLETED"
    by_index = {s["index"]: s for s in outcome["scenarios"]}
    assert (by_index[5]["attempts"], by_index[5]["session_id"], by_index[5]["error"]) == (
        2, session_id("run-kill", 5, 1), None,
    )  # fmt: skip
    assert all(s["attempts"] == 1 for i, s in by_index.items() if i != 5)
    evaluated = [s["session_id"] for s in outcome["scenarios"]]
    assert len(evaluated) == len(set(evaluated)) == ITEMS
    assert slow not in evaluated
    _assert_one_batch_of_exactly(emulator, outcome, evaluated)

    stats = emulator.stats()
    assert stats["calls"]["InvokeHarness"] == ITEMS + 1
    assert set(stats["harness"]["calls_by_session"].values()) == {1}  # never twice
    outcomes = collections.Counter(
        i["outcome"] for s in emulator.sessions() for i in s["invocations"]
    )
    assert outcomes == {"completed": ITEMS, "client_gone": 1}
    assert stats["calls"]["StartBatchEvaluation"] == 1


def test_harness_overrides_arrive_at_the_harness_per_item(
    emulator_factory, cluster_factory, producer
):
    # Two models over one scenario set: the run's overrides for every item, an item's own
    # in their place (whole), each call's as the emulated harness received it.
    emulator = emulator_factory(*EMULATOR)
    cluster = cluster_factory(emulator, EVALQ_MAX_INVOCATIONS="2")
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()
    request = _run("run-overrides", ["question 0", "question 1", "question 2"])
    run = request["scenarios"]
    run["model"] = {"bedrockModelConfig": {"modelId": "model-a", "temperature": 0.2}}
    run["systemPrompt"] = [{"text": "Answer in one sentence."}]
    run["skills"] = [{"awsSkills": {"paths": ["core-skills/*"]}}]
    run["items"][1].update(
        model={"bedrockModelConfig": {"modelId": "model-b"}}, maxTokens=3, actorId="customer-1"
    )
    run["items"][2].update(maxIterations=1, runtimeUserId="user-2")
    producer.submit(request)
    (outcome,) = producer.collect(1, timeout=90)

    assert outcome["status"] == "COMPLETED"
    assert [s["stop_reason"] for s in outcome["scenarios"]] == [
        "end_turn", "max_tokens", "max_iterations_exceeded",
    ]  # fmt: skip
    shared = {"systemPrompt": run["systemPrompt"], "skills": run["skills"]}
    expected = [
        {**shared, "model": run["model"]},
        {**shared, "model": {"bedrockModelConfig": {"modelId": "model-b"}}, "maxTokens": 3,
         "actorId": "customer-1"},
        {**shared, "model": run["model"], "maxIterations": 1, "runtimeUserId": "user-2"},
    ]  # fmt: skip
    sessions = {s["session_id"]: s for s in emulator.sessions()}
    for index, overrides in enumerate(expected):
        (call,) = sessions[session_id("run-overrides", index, 0)]["invocations"]
        assert call["overrides"] == overrides, index
    _assert_one_batch_of_exactly(
        emulator, outcome, [session_id("run-overrides", i, 0) for i in range(3)]
    )
