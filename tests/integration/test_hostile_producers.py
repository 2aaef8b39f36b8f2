"""A hostile producer, holding only what a producer is given (the broker URL, the right to
send on ``evals.requests``), against a real ``evalq worker``: each attack of issue 20 is
refused, nothing is lost, and the service keeps serving the other producers.

docs/security.md lists each attack, what evalq does, and the test here that shows it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from typing import Any

import pytest
import redis
from celery import Celery

from api_contracts.examples import sample_request
from worker import task_names
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


def _with_victim(service: Any, request_id: str) -> tuple[DeadLetterStore, Sender, Any]:
    """The dead-letter store, a hostile sender, and someone else's dead letter (which a
    purge, a replay or a forged replay header would take away)."""
    env = service.cluster.env
    store = _store(env)
    sender = Sender(env["EVALQ_BROKER_URL"])
    sender.submit({"request_id": request_id, "producer": "other-team"})
    _wait(lambda: store.count() == 1, 30, "the victim's dead letter")
    (victim,) = store.find()
    return store, sender, victim


def test_internal_tasks_and_remote_control_are_out_of_a_producers_reach(service, producer):
    env = service.cluster.env
    store, sender, victim = _with_victim(service, "victim-1")

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
    store, sender, victim = _with_victim(service, "victim-2")

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


RESERVED = ["unacked", "evals.requests", "evals.control", "celery",
            "_kombu.binding.evals.requests", "evalq:job:victim"]  # fmt: skip


def test_reply_to_reaches_only_queues_a_producer_may_use(service, producer):
    env = service.cluster.env
    store = _store(env)
    sender = Sender(env["EVALQ_BROKER_URL"])
    for n, queue in enumerate(RESERVED):
        sender.submit(_request(f"inject-{n}", reply_to=[queue]))
    sender.submit(_request("honest", reply_to=["good-team.replies"]))

    (outcome,) = producer.collect(1, timeout=60)
    assert outcome["request_id"] == "honest"
    (reply,) = producer.collect(1, timeout=30, queue="good-team.replies")
    assert reply["event_id"] == outcome["event_id"]
    _wait(lambda: store.count() == len(RESERVED), 30, "a dead letter per injection")
    letters = {letter.request_id: letter for letter in store.find()}
    for n, queue in enumerate(RESERVED):
        letter = letters[f"inject-{n}"]
        assert letter.reason == "invalid_request"
        # The contract's pattern already refuses a name starting with "_".
        assert f"reply_to {queue!r}" in letter.error or "reply_to.0: String" in letter.error
    if sender.broker is not None:  # nothing landed in evalq's or kombu's own keys
        assert sender.broker.type("unacked") in (b"hash", b"none")
        # evalq's own steps may be on the control queue; no outcome is.
        waiting = [json.loads(item) for item in sender.broker.lrange("evals.control", 0, -1)]
        assert all(envelope["headers"].get("task") in task_names.CONTROL for envelope in waiting)
    assert service.worker.alive()


def test_a_request_id_taken_by_another_producer_is_still_the_owners(service, producer):
    env = service.cluster.env
    store = _store(env)
    sender = Sender(env["EVALQ_BROKER_URL"])
    squatter = sample_request(request_id="release-1", producer="squatter")
    squatter["evaluation"]["tags"] = {"emulator:sessions": "1"}
    sender.submit(squatter)
    _wait(lambda: store.redis.exists("evalq:job:release-1"), 30, "the squatter's job")
    sender.submit(_request("release-1"))
    sender.submit(_request("release-1"))  # the owner's retry: a duplicate of its own

    outcomes = producer.collect(2, timeout=60)
    # Two jobs, two outcomes for one request_id: collect() counts ids, so read on.
    outcomes += producer.drain(settle=3.0)
    by_producer = {o["producer"]: o for o in outcomes}
    assert set(by_producer) == {"squatter", "good-team"}
    assert by_producer["good-team"]["request_id"] == "release-1"
    assert by_producer["good-team"]["status"] == "COMPLETED"
    assert store.count() == 0  # no idempotency_conflict
    assert service.emulator.stats()["jobs"]["total"] == 2


def test_a_flooding_producer_is_capped_and_the_others_are_served(
    emulator_factory, cluster_factory, producer
):
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator, EVALQ_PRODUCER_BACKLOG_CAP="3",
                              EVALQ_MAX_ACTIVE_JOBS="1")  # fmt: skip
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()
    store = _store(cluster.env)
    sender = Sender(cluster.env["EVALQ_BROKER_URL"])
    for i in range(8):
        flood = sample_request(request_id=f"flood-{i}", producer="flood")
        flood["evaluation"]["tags"] = {"emulator:duration": "100000"}
        sender.submit(flood)
    _wait(lambda: store.count() == 4, 60, "the flood's excess dead-lettered")
    assert {letter.reason.value for letter in store.find()} == {"producer_quota"}

    sender.submit(_request("calm-1"))
    # Another producer is still taken: registered and waiting for the slot, no refusal.
    assert _job_state(store, "calm-1") == "QUEUED"
    assert store.count() == 4
    assert store.redis.llen("evalq:backlog:0:flood") == 3
    assert store.redis.llen("evalq:backlog:0:good-team") == 1


def _job_state(store: DeadLetterStore, request_id: str) -> str:
    _wait(lambda: store.redis.hget(f"evalq:job:{request_id}", "state") is not None, 30,
          f"{request_id}'s record")  # fmt: skip
    return str(store.redis.hget(f"evalq:job:{request_id}", "state"))


@pytest.mark.parametrize("broker", ["rabbitmq"], indirect=True)
def test_on_rabbitmq_a_producer_is_who_the_broker_says(
    emulator_factory, cluster_factory, producer, tmp_path
):
    """A producer listed with broker users must send as one of them: RabbitMQ checks a
    message's user_id against the connection, so the name is no longer self-declared."""
    path = tmp_path / "producers.yaml"
    path.write_text(
        "unlisted: refuse\n"
        "producers:\n"
        "  - {name: good-team, broker_users: [guest], max_priority: 5}\n"
    )
    emulator = emulator_factory("--time-scale", "40")
    cluster = cluster_factory(emulator, EVALQ_PRODUCERS_FILE=str(path))
    cluster.start_worker("w1", concurrency=2)
    cluster.start_beat()
    store = _store(cluster.env)
    sender = Sender(cluster.env["EVALQ_BROKER_URL"])

    def send(request: dict[str, Any], **options: Any) -> None:
        sender.app.send_task("evals.submit", kwargs={"request": request},
                             queue="evals.requests", **options)  # fmt: skip

    send(_request("unsigned"))
    send(_request("too-urgent", priority=9), user_id="guest")
    send({**_request("stranger-1"), "producer": "stranger"}, user_id="guest")
    send(_request("signed"), user_id="guest")
    # A user_id that is not the connection's: RabbitMQ refuses the publish itself.
    forger = Sender(cluster.env["EVALQ_BROKER_URL"])
    with contextlib.suppress(Exception):
        forger.app.send_task("evals.submit", kwargs={"request": _request("forged")},
                             queue="evals.requests", user_id="someone-else")  # fmt: skip

    (outcome,) = producer.collect(1, timeout=60)
    assert outcome["request_id"] == "signed"
    _wait(lambda: store.count() == 3, 30, "three refusals")
    letters = {letter.request_id: letter for letter in store.find()}
    assert {k: v.reason.value for k, v in letters.items()} == {
        "unsigned": "producer_not_allowed", "too-urgent": "producer_not_allowed",
        "stranger-1": "producer_not_allowed",
    }  # fmt: skip
    assert "names none (set user_id)" in letters["unsigned"].error
    assert "above the highest producer 'good-team' may use, 5" in letters["too-urgent"].error
    assert "not listed" in letters["stranger-1"].error
    assert store.redis.exists("evalq:job:forged") == 0
