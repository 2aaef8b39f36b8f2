"""Ops with the CLI alone: find a dead letter, read why it failed, replay it, see it
complete; a replay that fails again comes back with its replay count raised. Also the same
replay as a Celery task (``evals.dlq.replay``) sent by automation."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from api_contracts.examples import sample_request
from evalq_emulators.processes import evalq_command

# The delivery-critical suites run on both brokers (docs/brokers.md).
pytestmark = pytest.mark.both_brokers


def _evalq(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        evalq_command(*args),
        env={**os.environ, **env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _letters(env: dict[str, str], *options: str) -> list[dict[str, Any]]:
    result = _evalq(env, "dlq", "list", "--json", *options)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _wait_for(condition, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def _request(request_id: str) -> dict[str, Any]:
    request = sample_request(request_id=request_id, producer="ops-test")
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    return request


def test_ops_find_read_replay_and_see_it_complete(service, producer):
    emulator, cluster = service.emulator, service.cluster
    env = cluster.env

    # AWS refuses access for a while: the request is dead-lettered at once, not retried.
    emulator.post("/_emulator/faults", {"errors": {"AccessDeniedException": 1.0}})
    producer.submit(_request("denied"))
    bad = _request("eleven")
    bad["evaluation"]["evaluators"] = [{"evaluatorId": f"Builtin.E{i}"} for i in range(11)]
    producer.submit(bad)
    letters = _wait_for(lambda: len(_letters(env)) == 2 and _letters(env))
    by_request = {d["request_id"]: d for d in letters}
    denied = by_request["denied"]
    assert denied["reason"] == "access_denied"
    assert [d["request_id"] for d in _letters(env, "--reason", "access_denied")] == ["denied"]

    shown = _evalq(env, "dlq", "show", denied["dead_letter_id"][:8])
    assert shown.returncode == 0, shown.stderr
    assert "access_denied" in shown.stdout
    assert "AccessDeniedException" in shown.stdout

    # Access fixed: replay. The entry leaves the store once intake accepted the request.
    emulator.post("/_emulator/faults", {})
    replayed = _evalq(env, "dlq", "replay", denied["dead_letter_id"])
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replayed" in replayed.stdout
    (outcome,) = producer.collect(1, timeout=60)
    assert (outcome["request_id"], outcome["status"]) == ("denied", "COMPLETED")
    assert [d["request_id"] for d in _letters(env)] == ["eleven"]
    status = _evalq(env, "status", "denied", "--json")
    assert json.loads(status.stdout)["state"] in ("PUBLISHED", "DELETED")

    # A replay of a request that fails again comes back with its replay count raised.
    eleven = by_request["eleven"]
    assert _evalq(env, "dlq", "replay", eleven["dead_letter_id"]).returncode == 0
    again = _wait_for(lambda: [d for d in _letters(env) if d["replay_count"] == 1])
    assert [(d["dead_letter_id"], d["state"]) for d in again] == [
        (eleven["dead_letter_id"], "dead")
    ]

    # Automation: the same replay as a task, for a request that will now succeed.
    emulator.post("/_emulator/faults", {"errors": {"AccessDeniedException": 1.0}})
    producer.submit(_request("denied-2"))
    later = _wait_for(lambda: [d for d in _letters(env) if d["request_id"] == "denied-2"])
    emulator.post("/_emulator/faults", {})
    # On RabbitMQ ops' automation names its user (the broker checks it), or the control
    # queue does not run the task (test_hostile_producers.py).
    producer.app.send_task(
        "evals.dlq.replay",
        kwargs={"everything": True, "reason": "access_denied"},
        queue="evals.control",
        user_id=urlsplit(env["EVALQ_BROKER_URL"]).username,
    )
    (outcome,) = producer.collect(1, timeout=60)
    assert (outcome["request_id"], outcome["status"]) == ("denied-2", "COMPLETED")
    _wait_for(
        lambda: later[0]["dead_letter_id"] not in {d["dead_letter_id"] for d in _letters(env)}
    )

    jobs = collections.Counter(j["clientToken"] for j in emulator.jobs())
    assert max(jobs.values()) == 1, "a replay never starts a second remote job"

    purged = _evalq(env, "dlq", "purge", "--all", "--yes")
    assert purged.stdout.strip() == "purged 1"
    assert _letters(env) == []
