"""Hostile input: crafted messages interleaved with valid requests, sent through the real
broker to a real ``evalq worker``. Every bad message ends as a dead letter with its own
reason, every valid request completes, and the worker process never dies.

Raw bodies and content types are published with kombu as a protocol-2 Celery message (the
headers Celery would send, a body it would not); bad arguments go through ``send_task``.
Each crafted message carries a unique tag so its dead letter can be found.
"""

from __future__ import annotations

import base64
import collections
import json
import pickle
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Queue

from api_contracts.examples import sample_request
from worker.dead_letters.messages import raw_body_bytes
from worker.dead_letters.sizes import cut_of
from worker.dead_letters.store import DeadLetterStore
from worker.keys import Keys

# The delivery-critical suites run on both brokers (docs/brokers.md).
pytestmark = pytest.mark.both_brokers


LIMIT = 256 * 1024  # the default max_payload_bytes
REQUESTS = "evals.requests"


class Sender:
    """A producer that can also send what no well-behaved producer would."""

    def __init__(self, broker_url: str) -> None:
        self.app = Celery("hostile-producer", broker=broker_url)
        self.app.conf.update(task_serializer="json", accept_content=["json"])
        self.connection = Connection(broker_url)
        self.queue = Queue(REQUESTS, Exchange(REQUESTS, "direct"), REQUESTS)
        self.producer = self.connection.Producer()
        self.broker = redis.Redis.from_url(broker_url) if broker_url.startswith("redis") else None

    def task(self, name: str, args: Any = (), kwargs: Any = None) -> None:
        self.app.send_task(name, args=args, kwargs=kwargs, queue=REQUESTS)

    def submit(self, request: Any) -> None:
        self.task("evals.submit", kwargs={"request": request})

    def raw(
        self,
        body: bytes,
        content_type: str | None = "application/json",
        *,
        task: str | None = "evals.submit",
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish ``body`` as it is, with the headers of a protocol-2 call of ``task``
        (none at all when ``task`` is None)."""
        task_id = str(uuid.uuid4())
        celery_headers = (
            {} if task is None else dict(self.app.amqp.as_task_v2(task_id, task).headers)
        )
        self.producer.publish(
            body,
            exchange=self.queue.exchange,
            routing_key=REQUESTS,
            declare=[self.queue],
            content_type=content_type,
            content_encoding="utf-8" if content_type == "application/json" else "binary",
            headers={**celery_headers, **(headers or {})},
        )

    def push(self, item: bytes) -> None:
        """Put ``item`` straight onto the queue's list, as a producer that writes to Redis
        itself (and gets kombu's envelope wrong) would. RabbitMQ has no envelope to get
        wrong: there the item is a message of its own, without Celery's headers."""
        if self.broker is None:
            self.raw(item, task=None)
        else:
            self.broker.lpush(REQUESTS, item)

    def close(self) -> None:
        self.connection.release()
        if self.broker is not None:
            self.broker.close()


@dataclass(frozen=True)
class Case:
    tag: str
    reason: str
    send: Callable[[Sender], None]


def _tag(n: int) -> str:
    return f"hostile-{n:04d}"


def _valid(i: int, **overrides: Any) -> dict[str, Any]:
    request = sample_request(request_id=f"ok-{i:04d}", producer="hostile-suite", **overrides)
    request["evaluation"]["tags"] = {"emulator:sessions": "1"}
    request["correlation"] = {"n": str(i)}
    return request


def _bad(tag: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """A valid request (tagged in its description) broken by ``change``."""
    request = sample_request(request_id=tag, producer="hostile-suite")
    request["evaluation"]["description"] = tag
    change(request)
    return request


def _celery_body(request: Any, tag: str = "") -> bytes:
    return json.dumps(
        [[], {"request": request, "tag": tag} if tag else {"request": request}, {}]
    ).encode()


def _cases(on_rabbitmq: bool) -> list[Case]:
    cases: list[Case] = []

    def add(reason: str, send: Callable[[str], Callable[[Sender], None]]) -> None:
        tag = _tag(len(cases))
        cases.append(Case(tag, reason, send(tag)))

    def submit(
        change: Callable[[dict[str, Any]], Any],
    ) -> Callable[[str], Callable[[Sender], None]]:
        return lambda tag: lambda s: s.submit(_bad(tag, change))

    def raw(body: Callable[[str], bytes], content_type: str | None = "application/json", **kw: Any):
        return lambda tag: lambda s: s.raw(body(tag), content_type, **kw)

    def setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(request: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            node = request
            for part in parents:
                node = node[int(part)] if isinstance(node, list) else node[part]
            node[last] = value

        return change

    def dropper(path: str) -> Callable[[dict[str, Any]], None]:
        def change(request: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            node = request
            for part in parents:
                node = node[part]
            del node[last]

        return change

    # Bodies that are not JSON at all (declared as JSON).
    for text in [
        "not json {t}",
        "{{ {t}",
        "[[], {{ {t}",
        "{{'single': '{t}'}}",
        "<xml>{t}</xml>",
        "[1, 2, {t}",
        '{{"a": }} {t}',
        "]]] {t}",
        "tru {t}",
        '"unterminated {t}',
    ]:
        add("undecodable_message", raw(lambda t, text=text: text.format(t=t).encode()))
    add("undecodable_message", raw(lambda t: b"\xff\xfe\x00 " + t.encode() + b" \xc3\x28"))
    add("undecodable_message", raw(lambda t: ("[" * 5000 + f'"{t}"' + "]" * 5000).encode()))
    add("undecodable_message", raw(lambda t: b" " + t.encode() + b" "))

    # Items on the list that are no kombu envelope at all (the stock transport's worker
    # died on these: see worker/broker.py).
    def envelope(tag: str, drop: str = "", body: str | None = None) -> bytes:
        celery_body = base64.b64encode(_celery_body({"request_id": tag})).decode()
        properties = {
            "body_encoding": "base64",
            "delivery_tag": tag,
            "delivery_info": {"exchange": "", "routing_key": REQUESTS},
        }
        properties.pop(drop, None)
        headers = {"task": "evals.submit", "id": tag}
        return json.dumps(
            {"body": body or celery_body, "content-type": "application/json",
             "content-encoding": "utf-8", "headers": headers, "properties": properties}
        ).encode()  # fmt: skip

    # On RabbitMQ each is a message of its own: what reads as a protocol-1 task call
    # (a "task" in the body) is then a call with bad arguments.
    as_call = "bad_task_signature" if on_rabbitmq else "undecodable_message"
    for reason, item in [
        ("undecodable_message", lambda t: f"not an envelope {t}".encode()),
        ("undecodable_message", lambda t: json.dumps({"request": {"request_id": t}}).encode()),
        (as_call, lambda t: json.dumps({"task": "evals.submit", "id": t, "kwargs": {}}).encode()),
        (
            "undecodable_message",
            lambda t: b'{"properties": {"delivery_tag": "\xff' + t.encode() + b'\xfe"}',
        ),
        ("undecodable_message", lambda t: envelope(t, drop="delivery_tag")),
        ("undecodable_message", lambda t: envelope(t, drop="delivery_info")),
        ("undecodable_message", lambda t: envelope(t, body=f"{t} is not base64")),
    ]:
        add(reason, lambda t, item=item: lambda s: s.push(item(t)))
    # Not a Celery message: no task name anywhere.
    for n in range(3):
        add(
            "undecodable_message",
            raw(lambda t, n=n: json.dumps({"hello": t, "n": n}).encode(), task=None),
        )
    # Content types other than JSON.
    for obj in ([1, 2], {"k": "v"}, ("a", "b"), "text", 3.5, {"nested": [{"x": 1}]}):
        add(
            "unsupported_content_type",
            raw(
                lambda t, obj=obj: pickle.dumps(((), {"request": obj, "tag": t}, {})),
                "application/x-python-serialize",
            ),
        )
    for ctype in [
        "application/x-yaml",
        "application/x-msgpack",
        "text/plain",
        "application/data",
        "application/json; charset=latin-1",
        None,
    ]:
        add("unsupported_content_type", raw(lambda t: _celery_body({"tag": t}), ctype))
    # Wrong types.
    for path, value in [
        ("request_id", 12345),
        ("producer", ["a"]),
        ("deadline_seconds", "100"),
        ("priority", "high"),
        ("correlation", ["a", "b"]),
        ("reply_to", "queue"),
        ("evaluation.evaluators", {"evaluatorId": "Builtin.X"}),
        ("schema_version", "1"),
        ("evaluation.tags", "team=a"),
    ]:
        add("invalid_request", submit(setter(path, value)))
    add("invalid_request", lambda t: lambda s: s.submit(f"just a string {t}"))
    add("invalid_request", lambda t: lambda s: s.submit([t, "a", "list"]))
    add("invalid_request", lambda t: lambda s: s.submit({"request_id": t, "evaluation": [t]}))
    # Missing fields.
    for path in [
        "request_id",
        "producer",
        "evaluation.dataSourceConfig",
        "evaluation.dataSourceConfig.cloudWatchLogs.serviceNames",
    ]:
        add("invalid_request", submit(dropper(path)))
    add("invalid_request", lambda t: lambda s: s.submit({"correlation": {"tag": t}}))
    add("invalid_request", submit(dropper("evaluation")))
    # Unknown fields.
    for path, value in [
        ("extra", 1),
        ("evaluation.clientToken", "x" * 40),
        ("evaluation.unknownParam", True),
        ("evaluation.evaluators.0.weight", 2),
        ("Request_Id", "dup"),
    ]:
        add("invalid_request", submit(setter(path, value)))
    # Eleven (and more) evaluators.
    for count in (11, 12, 50):
        evaluators = [{"evaluatorId": f"Builtin.E{i}"} for i in range(count)]
        add("invalid_request", submit(setter("evaluation.evaluators", evaluators)))
    # Invalid ARNs and names.
    for path, value in [
        ("evaluation.batchEvaluationName", "1starts_with_digit"),
        ("evaluation.batchEvaluationName", "has-dash"),
        ("evaluation.batchEvaluationName", "n" * 49),
        ("evaluation.kmsKeyArn", "arn:aws:kms:us-east-1:123:key/short"),
        ("evaluation.evaluators.0.evaluatorId", "NotBuiltin"),
        ("evaluation.dataSourceConfig.cloudWatchLogs.logGroupNames", ["bad group name"]),
        (
            "evaluation.dataSourceConfig",
            {
                "onlineEvaluationConfigSource": {
                    "onlineEvaluationConfigArn": "arn:aws:iam::123456789012:role/nope"
                }
            },
        ),
        ("producer", "Team_A"),
    ]:
        add("invalid_request", submit(setter(path, value)))
    # Control characters and odd unicode.
    for path, value in [
        ("request_id", "nul\x00byte"),
        ("request_id", "emoji-🎉"),
        ("request_id", "zero\u200bwidth"),
        ("producer", "rtl\u202eoverride"),
        ("correlation", {"k": "unit\x1fsep"}),
        ("correlation", {"k": "c1\x85next"}),
        ("correlation", {"clé": "v"}),
        ("evaluation.description", "lone \ud800 surrogate"),
    ]:
        add("invalid_request", submit(setter(path, value)))
    # Huge correlation maps.
    for value in [
        {f"k{i}": "v" for i in range(33)},
        {f"k{i}": "v" * 10 for i in range(2000)},
        {"k": "v" * 257},
        {"k" * 65: "v"},
    ]:
        add("invalid_request", submit(setter("correlation", value)))
    # Unknown backends.
    for backend in ["vertex", "AGENTCORE", "", 42]:
        add("unknown_backend", submit(setter("backend", backend)))
    # Payloads over the limit: checked before parsing, so even junk is "too large".
    for size in (LIMIT + 1, 300 * 1024, 512 * 1024, 1024 * 1024, 2 * 1024 * 1024):
        add(
            "payload_too_large",
            raw(lambda t, size=size: _celery_body({"request_id": t, "pad": "x" * size})),
        )
    add("payload_too_large", raw(lambda t: t.encode() + b"\xff" * (LIMIT + 10)))
    add(
        "payload_too_large",
        raw(lambda t: pickle.dumps((t, "y" * (LIMIT + 10))), "application/x-python-serialize"),
    )
    # Unknown task names on our queue.
    for name in ["evals.sumbit", "evals.submit ", "EVALS.SUBMIT", "evals", "other.team.task"]:
        add(
            "bad_task_signature",
            lambda t, name=name: lambda s: s.task(name, kwargs={"request": {"tag": t}}),
        )
    # Wrong arguments for evals.submit (and our other tasks).
    add("bad_task_signature", lambda t: lambda s: s.task("evals.submit", kwargs={"req": t}))
    add(
        "bad_task_signature",
        lambda t: (
            lambda s: s.task(
                "evals.submit", kwargs={"request": _bad(t, lambda r: None), "priority": 5}
            )
        ),
    )
    add("bad_task_signature", lambda t: lambda s: s.task("evals.submit", args=[t, t]))
    add(
        "bad_task_signature",
        lambda t: lambda s: s.task("evals.submit", args=[t], kwargs={"request": {}}),
    )
    # evalq's internal tasks run only from its own queues (test_hostile_producers.py).
    add("forbidden_task", lambda t: lambda s: s.task("evals.advance", kwargs={"nope": t}))
    add("forbidden_task", lambda t: lambda s: s.task("evals.tick", args=[t]))
    add("bad_task_signature", raw(lambda t: json.dumps([[], [t], {}]).encode()))
    add("bad_task_signature", raw(lambda t: json.dumps({"x": t}).encode()))
    add("bad_task_signature", raw(lambda t: json.dumps(f"just a string {t}").encode()))
    add("bad_task_signature", raw(lambda t: json.dumps([t, {}, {}]).encode()))
    # Broken Celery headers.
    add("bad_task_signature", raw(lambda t: _celery_body({"tag": t}), headers={"id": None}))
    add("bad_task_signature", raw(lambda t: _celery_body({"tag": t}), headers={"eta": "soon"}))
    return cases


def _collisions(start: int) -> list[Case]:
    """Requests reusing a request_id that already has a job, with another payload."""
    cases = []
    for k in range(5):
        tag = _tag(start + k)
        request = _valid(k)
        request["evaluation"]["description"] = tag
        cases.append(Case(tag, "idempotency_conflict", lambda s, r=request: s.submit(r)))
    return cases


def _text_of(letter: Any) -> str:
    original = letter.request
    if isinstance(original, str) and cut_of(original) is not None:
        return _body_start(raw_body_bytes(original)).decode("utf-8", "replace")
    if isinstance(original, str):
        return raw_body_bytes(original).decode("utf-8", "replace")
    return json.dumps(original) + (letter.request_id or "")


def _body_start(raw: bytes) -> bytes:
    """The start of a raw body, or, when it is the start of a kombu envelope (what is
    kept of an item the fetch refused unread), the start of the body it carries."""
    head = b'{"body": "'
    if not raw.startswith(head):
        return raw
    encoded = raw[len(head) :].split(b'"', 1)[0]
    return base64.b64decode(encoded[: len(encoded) // 4 * 4])


def _wait_for_dead_letters(store: DeadLetterStore, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while store.count() < count and time.monotonic() < deadline:
        time.sleep(0.2)


def test_hostile_messages_become_dead_letters_and_valid_requests_complete(service, producer):
    emulator, cluster, worker = service.emulator, service.cluster, service.worker
    pid = worker.pid
    sender = Sender(cluster.env["EVALQ_BROKER_URL"])
    store = DeadLetterStore(
        redis.Redis.from_url(cluster.env["EVALQ_REDIS_URL"], decode_responses=True),
        Keys(),
        max_entries=10_000,
        max_age=10**9,
    )

    # Phase 1: crafted messages with a valid request after every fourth one.
    cases = _cases(on_rabbitmq=service.broker.kind == "rabbitmq")
    sent: list[dict[str, Any]] = []
    odd_but_valid = ["emoji 🎉 and 中文", "rtl \u202e text", "tabs\tand\nnewlines", "ñ" * 200]
    for n, case in enumerate(cases):
        case.send(sender)
        if n % 4 == 3:
            request = _valid(len(sent))
            request["evaluation"]["description"] = odd_but_valid[len(sent) % len(odd_but_valid)]
            if len(sent) == 1:  # the largest correlation map the contract allows
                request["correlation"] = {f"k{i}": "v" * 256 for i in range(32)}
            sender.submit(request)
            sent.append(request)
    valid = len(sent)
    first = producer.collect(valid, timeout=60)
    assert {o["request_id"] for o in first} == {f"ok-{i:04d}" for i in range(valid)}

    # Phase 2: reuse request_ids that now have jobs (conflicts), resend one request as it
    # was (a duplicate: no dead letter), and a few more valid ones.
    collisions = _collisions(len(cases))
    for k, case in enumerate(collisions):
        case.send(sender)
        sender.submit(_valid(valid + k))
    sender.submit(sent[0])
    more = producer.collect(len(collisions), timeout=60)
    assert {o["request_id"] for o in more} == {f"ok-{valid + k:04d}" for k in range(5)}
    valid += len(collisions)

    bad = cases + collisions
    _wait_for_dead_letters(store, len(bad), timeout=20)
    letters = store.find(limit=10_000)
    wrong = []
    for case in bad:
        found = [d for d in letters if case.tag in _text_of(d)]
        if [d.reason.value for d in found] != [case.reason]:
            wrong.append((case.tag, case.reason, [(d.reason.value, d.error[:120]) for d in found]))
    assert not wrong, wrong
    assert len(letters) == len(bad)

    outcomes = first + more + producer.drain(settle=1.0)
    assert {o["status"] for o in outcomes} == {"COMPLETED"}
    assert len({o["request_id"] for o in outcomes}) == valid
    assert max(collections.Counter(j["clientToken"] for j in emulator.jobs()).values()) == 1

    assert worker.alive()
    assert worker.pid == pid
    log = (cluster.logs / "w1.log").read_text(errors="replace")
    assert "Unrecoverable error" not in log
    assert "WorkerLostError" not in log

    by_reason = collections.Counter(d.reason.value for d in letters)
    print(
        f"\nhostile suite: {len(bad)} crafted + {valid} valid messages; "
        f"dead letters by reason {dict(sorted(by_reason.items()))}; "
        f"outcomes {len(outcomes)} ({valid} requests, all COMPLETED); worker pid {pid} alive"
    )
    sender.close()
