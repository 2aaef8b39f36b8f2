"""Evaluator rollouts end to end: real ``evalq worker`` / ``evalq beat`` processes, the
emulator over HTTP, a foreign producer sending ``evals.evaluator.update`` by name. The
emulator's own clock is the evidence: when each batch job was created and ended, when
UpdateEvaluator was called and when the evaluator became ACTIVE again."""

from __future__ import annotations

import json
import subprocess
import time

import redis

from api_contracts.examples import sample_request
from evalq_emulators.processes import evalq_command
from worker.backends.agentcore import client_token
from worker.keys import Keys
from worker.observability.metrics import REMOTE_CALLS, field


def _job(request_id: str, evaluator_id: str, duration: int, producer: str = "team-a") -> dict:
    request = sample_request(request_id, producer)
    request["evaluation"]["evaluators"] = [{"evaluatorId": evaluator_id}]
    request["evaluation"]["tags"] = {"emulator:duration": str(duration),
                                     "emulator:sessions": "2"}  # fmt: skip
    return request


def _rollout(request_id: str, evaluator_id: str, **overrides) -> dict:
    return {
        "schema_version": 1,
        "request_id": request_id,
        "producer": "quality",
        "evaluator_id": evaluator_id,
        "update": {"description": "v2: cites its sources"},
        "reply_to": ["quality.rollouts"],
        **overrides,
    }


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _dead_letters(env: dict[str, str]) -> list[dict]:
    client = redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)
    return [json.loads(client.get(f"evalq:dead:{i}")) for i in client.zrange("evalq:dead", 0, -1)]


def test_a_drained_rollout_waits_for_the_last_running_user_and_no_user_starts_until_active(
    emulator_factory, cluster_factory, producer
):
    # Evaluator updates stay UPDATING 80 emulated s: 2 s real at 40x.
    emulator = emulator_factory("--time-scale", "40", "--update-seconds", "80")
    cluster = cluster_factory(emulator)
    cluster.start_worker("w1", concurrency=3)
    cluster.start_beat()
    judge = emulator.create_evaluator("grounded")

    # Two jobs that use the judge run (2 s and 4 s), and one that does not.
    for request in (_job("uses-1", judge, 80), _job("uses-2", judge, 160),
                    _job("other-1", "Builtin.Helpfulness", 40, "team-b")):  # fmt: skip
        producer.submit(request)
    tokens = {client_token(r): r for r in ("uses-1", "uses-2", "other-1")}
    _wait_for(lambda: len(emulator.jobs()) == 3, 30, "the first jobs to start")

    producer.update_evaluator(_rollout("judge-v2", judge))
    store = redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"], decode_responses=True)
    _wait_for(lambda: store.hget("evalq:job:judge-v2", "state") == "DRAINING", 20,
              "the drain to be registered")  # fmt: skip
    later = [_job("uses-3", judge, 40), _job("uses-4", judge, 40, "team-b"),
             _job("other-2", "Builtin.Helpfulness", 40, "team-b"),
             _job("other-3", "Builtin.Correctness", 40, "team-c")]  # fmt: skip
    for request in later:
        producer.submit(request)
        tokens[client_token(request["request_id"])] = request["request_id"]

    (rollout,) = producer.collect(1, timeout=60, queue="evals.evaluator-updates")
    outcomes = producer.collect(7, timeout=60)
    (echo,) = producer.collect(1, timeout=10, queue="quality.rollouts")

    assert {o["request_id"]: o["status"] for o in outcomes} == {
        r: "COMPLETED" for r in tokens.values()
    }
    assert (rollout["request_id"], rollout["status"], rollout["error"]) == (
        "judge-v2", "UPDATED", None,
    )  # fmt: skip
    assert rollout["evaluator"]["description"] == "v2: cites its sources"
    assert echo["event_id"] == rollout["event_id"]

    evaluator = emulator.evaluator(judge)
    (call,) = evaluator["update_calls"]
    called_at = call["called_at"]
    assert call["clientToken"] == client_token("judge-v2")
    active_at = min(e["at"] for e in evaluator["history"]
                    if e["at"] >= called_at and e["status"] == "ACTIVE")  # fmt: skip
    jobs = {tokens[j["clientToken"]]: j for j in emulator.jobs()}
    users = {r: j for r, j in jobs.items() if judge in j["evaluators"]}
    # Called only after the last running job that used the judge ended...
    assert max(users[r]["ended_at"] for r in ("uses-1", "uses-2")) <= called_at
    # ...and no job using it started between that call and ACTIVE: the held ones after.
    assert all(not called_at <= j["created_at"] <= active_at for j in users.values())
    assert min(users[r]["created_at"] for r in ("uses-3", "uses-4")) >= active_at
    # Others passed the held jobs during the drain.
    assert max(jobs[r]["created_at"] for r in ("other-2", "other-3")) < called_at
    assert emulator.stats()["max_active"] <= 5
    # The rollout's control-plane calls are counted like the backend's own.
    calls = Keys().metrics(REMOTE_CALLS.name)
    update_calls = field("update_evaluator", "ok", "agentcore", "default")
    assert store.hget(calls, update_calls) == "1"
    assert int(store.hget(calls, field("get_evaluator", "ok", "agentcore", "default")) or 0) >= 2


def test_rollouts_that_cannot_run_are_dead_letters_with_their_reasons_and_the_cli_waits(
    emulator_factory, cluster_factory, producer, tmp_path
):
    emulator = emulator_factory("--time-scale", "40", "--update-seconds", "40")
    cluster = cluster_factory(emulator)
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()
    locked = emulator.create_evaluator("watched")
    lock = emulator.lock("prod_watch", [locked])
    free = emulator.create_evaluator("free")

    producer.update_evaluator(_rollout("builtin", "Builtin.Helpfulness"))
    producer.update_evaluator(_rollout("locked", locked))
    producer.update_evaluator(_rollout("ghost", "ghost-abcdefghij"))
    _wait_for(lambda: len(_dead_letters(cluster.env)) == 3, 30, "three dead letters")

    letters = {d["request_id"]: d for d in _dead_letters(cluster.env)}
    assert letters["builtin"]["reason"] == "invalid_request"
    assert "cannot be updated" in letters["builtin"]["error"]
    assert letters["builtin"]["task_name"] == "evals.evaluator.update"
    assert letters["locked"]["reason"] == "evaluator_locked"
    assert f"prod_watch ({lock})" in letters["locked"]["error"]
    assert letters["ghost"]["reason"] == "invalid_request"
    assert letters["ghost"]["error"] == "Evaluator ghost-abcdefghij not found"
    assert emulator.stats()["calls"].get("UpdateEvaluator", 0) == 0
    assert producer.drain(queue="evals.evaluator-updates", settle=0.5) == []

    # The command line sends a rollout by name and waits for its outcome.
    update = tmp_path / "update.json"
    update.write_text(json.dumps({"description": "v2 from the CLI"}))

    def cli(evaluator_id: str) -> subprocess.CompletedProcess[str]:
        argv = evalq_command("evaluator", "update", evaluator_id, "--file", str(update),
                             "--wait", "--timeout", "60")  # fmt: skip
        return subprocess.run(argv, env={**cluster.env, "COLUMNS": "200"}, capture_output=True,
                              text=True, timeout=90, check=False)  # fmt: skip

    done = cli(free)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "UPDATED" in done.stdout
    assert emulator.evaluator(free)["status"] == "ACTIVE"
    refused = cli(locked)
    assert refused.returncode == 1
    assert "evaluator_locked" in refused.stdout
