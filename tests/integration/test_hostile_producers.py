"""A hostile producer, holding only what a producer is given (the broker URL, the right to
send on ``evals.requests``), against a real ``evalq worker``: each attack of issue 20 is
refused, nothing is lost, and the service keeps serving the other producers.

docs/security.md lists each attack, what evalq does, and the test here that shows it.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import redis
from celery import Celery

from api_contracts.examples import sample_request
from worker.dead_letters.store import DeadLetterStore
from worker.keys import Keys

from .test_hostile_input import Sender

pytestmark = pytest.mark.both_brokers


def _store(env: dict[str, str]) -> DeadLetterStore:
    client = redis.Redis.from_url(env["EVALQ_REDIS_URL"], decode_responses=True)
    return DeadLetterStore(client, Keys(), max_entries=10_000, max_age=10**9)


def _request(request_id: str, **overrides: Any) -> dict[str, Any]:
    request = sample_request(request_id=request_id, producer="good-team", **overrides)
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    return request


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _by_reason(store: DeadLetterStore) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for letter in store.find():
        found.setdefault(letter.reason.value, []).append(letter)
    return found


def test_internal_tasks_and_remote_control_are_out_of_a_producers_reach(service, producer):
    env = service.cluster.env
    store = _store(env)
    sender = Sender(env["EVALQ_BROKER_URL"])
    # Someone else's dead letter, which a purge or replay would take away.
    sender.submit({"request_id": "victim-1", "producer": "other-team"})
    _wait(lambda: store.count() == 1, 30, "the victim's dead letter")
    (victim,) = store.find()

    sender.task("evals.dlq.purge", kwargs={"everything": True})
    sender.task("evals.dlq.replay", kwargs={"everything": True})
    sender.task("evals.janitor")
    sender.task("evals.advance", kwargs={"request_id": "victim-1"})
    if sender.broker is not None:
        # Pushed straight onto the list, claiming in its properties to be routed to the
        # control queue (from where a purge may run, and where a restore would put it).
        sender.broker.lpush("evals.requests", _envelope("evals.dlq.purge", "evals.control"))
    else:
        # RabbitMQ's default exchange reaches every queue: a purge straight onto the
        # control queue, without evalq's user_id (the broker refuses a forged one).
        sender.app.send_task("evals.dlq.purge", kwargs={"everything": True},
                             queue="evals.control")  # fmt: skip
    # Remote control: a producer's app asks every worker to shut down and to consume
    # another team's queue.
    control = Celery("hostile-control", broker=env["EVALQ_BROKER_URL"])
    control.control.shutdown()
    control.control.add_consumer("other-team.jobs")
    sender.submit(_request("after-attacks"))

    (outcome,) = producer.collect(1, timeout=60)
    assert outcome["request_id"] == "after-attacks"
    assert service.worker.alive()
    letters = _by_reason(store)
    assert store.get(victim.dead_letter_id) is not None  # neither purged nor replayed
    forbidden = sorted(letter.task_name for letter in letters["forbidden_task"])
    smuggled = ["evals.dlq.purge"]
    assert forbidden == sorted(["evals.dlq.purge", "evals.dlq.replay", "evals.janitor",
                                "evals.advance", *smuggled])  # fmt: skip
    errors = [letter.error for letter in letters["forbidden_task"]]
    from_requests = [e for e in errors if "may not be sent to queue 'evals.requests'" in e]
    if sender.broker is not None:  # the smuggled one counts as from the list it was on
        assert len(from_requests) == 5
    else:
        assert len(from_requests) == 4
        assert sum("queue 'evals.control' comes from broker user None" in e for e in errors) == 1
    log = (service.cluster.logs / "w1.log").read_text()
    assert "Got shutdown from remote" not in log


def _envelope(task: str, claimed_queue: str) -> bytes:
    body = json.dumps([[], {"everything": True, "claimed": claimed_queue}, {}]).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode(), "content-type": "application/json",
        "content-encoding": "utf-8", "headers": {"task": task, "id": "smuggled-1"},
        "properties": {"body_encoding": "base64", "delivery_tag": "smuggled-1",
                       "delivery_info": {"exchange": "", "routing_key": claimed_queue}},
    }).encode()  # fmt: skip


def test_a_forged_replay_header_takes_no_ones_dead_letter(service, producer):
    env = service.cluster.env
    store = _store(env)
    sender = Sender(env["EVALQ_BROKER_URL"])
    sender.submit({"request_id": "victim-2", "producer": "other-team"})
    _wait(lambda: store.count() == 1, 30, "the victim's dead letter")
    (victim,) = store.find()

    body = json.dumps([[], {"request": _request("forger-1")}, {}]).encode()
    sender.raw(body, headers={"evalq_replay": f"{victim.dead_letter_id}:1-made-up"})
    (outcome,) = producer.collect(1, timeout=60)
    assert outcome["request_id"] == "forger-1"
    assert store.get(victim.dead_letter_id) is not None


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [600, 450, 80])
def test_a_deeply_nested_message_is_a_dead_letter_and_no_poison_pill(service, producer, depth):
    """600 deep (2 KB) stopped every worker that took it: pickling the decoded arguments
    for the pool raised RecursionError in the worker's main process; smaller depths
    raised inside evals.submit, and the request was acknowledged and gone."""
    env = service.cluster.env
    store = _store(env)
    sender = Sender(env["EVALQ_BROKER_URL"])
    deep = _request("deep-1")
    deep["correlation"] = _nested(depth)
    sender.submit(deep)
    sender.submit({**_request("deep-2"), "evaluation": {"tags": _nested(depth)}})
    sender.submit(_request("after-deep"))

    (outcome,) = producer.collect(1, timeout=60)
    assert outcome["request_id"] == "after-deep"
    _wait(lambda: store.count() == 2, 30, "two dead letters")
    assert service.worker.alive()
    assert {letter.reason.value for letter in store.find()} == {"payload_too_deep"}
    for letter in store.find():
        assert "nests lists and objects over 64 deep" in letter.error
