"""The consumer guard: messages that fail before a task body runs become dead letters,
stored before they are acknowledged, and nothing in a body can make the guard crash."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import InvalidTaskError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message

from api_contracts import ReasonCode
from worker.dead_letters.guard import IntakeGuard
from worker.dead_letters.messages import (
    BASE64_MARKER,
    OVERSIZED_HEADER,
    UNREADABLE_HEADER,
    raw_body_bytes,
)
from worker.dead_letters.replay import ReplayMark
from worker.dead_letters.sizes import cut_of
from worker.dead_letters.store import DeadLetterStore
from worker.runtime.consumer import GuardedConsumer

LIMIT = 1024
HEADER_CAP = 512
NOW = 1_800_000_000.0

tasks = Celery("guard-tests")


@tasks.task(name="t.add")
def add(x: int, y: int) -> int:
    return x + y


@tasks.task(name="t.anything")
def anything(*args: Any, **kwargs: Any) -> None:
    return None


class FakeChannel:
    no_ack_consumers = None

    def __init__(self) -> None:
        self.acked: list[Any] = []
        self.rejected: list[tuple[Any, bool]] = []

    def basic_ack(self, tag: Any, multiple: bool = False) -> None:
        self.acked.append(tag)

    def basic_reject(self, tag: Any, requeue: bool = False) -> None:
        self.rejected.append((tag, requeue))


def _message(
    body: bytes | str,
    content_type: str | None = "application/json",
    *,
    task: str | None = "t.add",
    headers: dict[str, Any] | None = None,
) -> Message:
    base = {"task": task, "id": "task-id"} if task else {}
    return Message(
        body=body,
        content_type=content_type,
        content_encoding="utf-8",
        headers={**base, **(headers or {})},
        channel=FakeChannel(),
        delivery_tag="tag-1",
        accept=["application/json"],
    )


def _call(args: Any = (), kwargs: Any = None) -> bytes:
    return json.dumps([list(args), kwargs or {}, {}]).encode()


@pytest.fixture
def dead_letters(fake_redis, keys) -> DeadLetterStore:
    return DeadLetterStore(fake_redis, keys, max_entries=100, max_age=3600, max_entry_bytes=LIMIT)


@pytest.fixture
def guard(dead_letters, store) -> IntakeGuard:
    return IntakeGuard(dead_letters, max_payload_bytes=LIMIT, max_header_bytes=HEADER_CAP,
                       clock=lambda: NOW)  # fmt: skip


def _only_letter(dead_letters):
    (letter,) = dead_letters.find()
    return letter


# -- size ---------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_dead_lettered_unread_and_acked(guard, dead_letters):
    body = b"not even json " + b"x" * LIMIT
    message = _message(body)
    assert guard.too_large(message)
    letter = _only_letter(dead_letters)
    assert letter.reason == "payload_too_large"
    assert body.startswith(raw_body_bytes(letter.request))
    assert cut_of(letter.request)[1] == len(body)
    assert letter.task_name == "t.add"
    assert f"body {len(body)}" in letter.error
    assert message.channel.acked == ["tag-1"]
    assert not guard.too_large(_message(_call([1, 2])))


def test_a_huge_body_keeps_its_start_and_the_entry_keeps_at_most_the_limit(
    guard, dead_letters, fake_redis, keys
):
    body = b"start " + b"y" * (10 * LIMIT)
    guard.too_large(_message(body))
    letter = _only_letter(dead_letters)
    assert letter.request.startswith("start yyy")
    kept, total = cut_of(letter.request)
    assert (total, kept) == (len(body), len(raw_body_bytes(letter.request)))
    assert len(fake_redis.get(keys.dead_letter(letter.dead_letter_id)).encode()) <= LIMIT


def test_a_binary_body_is_kept_base64_encoded(guard, dead_letters):
    body = pickle.dumps(("x" * LIMIT, b"\x80\xff"))
    guard.too_large(_message(body, "application/x-python-serialize"))
    letter = _only_letter(dead_letters)
    assert letter.request.startswith(BASE64_MARKER)
    assert body.startswith(raw_body_bytes(letter.request))
    assert cut_of(letter.request)[1] == len(body)


def test_headers_count_toward_the_limit(guard, dead_letters):
    body = _call([1, 2])
    headers = {"x-pad": "h" * (HEADER_CAP - 100)}
    within = _message(b" " * (LIMIT - HEADER_CAP - len(body)) + body, headers=headers)
    assert not guard.too_large(within)
    over = _message(b" " * (LIMIT - len(body) - 50) + body, headers=headers)
    assert guard.too_large(over)
    letter = _only_letter(dead_letters)
    assert letter.reason == "payload_too_large"
    assert "headers " in letter.error
    assert over.channel.acked == ["tag-1"]


@pytest.mark.parametrize("name", ["x-junk", "task", "kwargsrepr", "evalq_replay", "h" * 5000])
def test_headers_over_their_cap_are_dead_lettered_and_never_kept_or_logged_whole(
    guard, dead_letters, fake_redis, keys, capsys, name
):
    huge = "H" * (5 * 2**20)  # 5 MiB: it was a 10 MiB dead letter and a 5 MiB log line
    message = _message(_call([1, 2]), headers={name: huge})
    assert guard.too_large(message)
    letter = _only_letter(dead_letters)
    assert letter.reason == "payload_too_large"
    assert f"over the cap of {HEADER_CAP}" in letter.error
    assert "bytes" in letter.error
    assert len(fake_redis.get(keys.dead_letter(letter.dead_letter_id)).encode()) <= LIMIT
    assert letter.task_name is None or len(letter.task_name) <= 200
    assert message.channel.acked == ["tag-1"]
    logged = capsys.readouterr()
    assert max(len(line) for line in (logged.out + logged.err).splitlines()) < 1000


def test_many_small_headers_over_the_cap_are_refused_too(guard, dead_letters):
    headers = {f"h{i}": i for i in range(HEADER_CAP)}
    assert guard.too_large(_message(_call([1, 2]), headers=headers))
    assert _only_letter(dead_letters).reason == "payload_too_large"


def test_headers_nested_thousands_deep_are_measured_without_recursion(guard, dead_letters):
    deep: Any = "end"
    for _ in range(100_000):
        deep = [deep]
    assert guard.too_large(_message(_call([1, 2]), headers={"deep": deep}))
    assert _only_letter(dead_letters).reason == "payload_too_large"


def test_an_item_the_fetch_refused_unread_is_too_large_not_undecodable(guard, dead_letters):
    """The reliable fetch hands over an oversized item's start, with its size."""
    start = b'{"body": "' + b"A" * 20_000
    why = "an item of 83886080 bytes, longer than ... (the first 20010 of 83886080 bytes kept)"
    headers = {UNREADABLE_HEADER: why, OVERSIZED_HEADER: "83886080"}
    message = _message(start, "application/octet-stream", task=None, headers=headers)
    assert guard.unreadable(message)
    letter = _only_letter(dead_letters)
    assert letter.reason == "payload_too_large"
    assert "refused unread" in letter.error
    assert letter.request.startswith('{"body": "AAA')
    assert cut_of(letter.request)[1] == 83886080
    assert message.channel.acked == ["tag-1"]


def test_an_item_that_was_no_envelope_is_dead_lettered_even_if_its_body_is_a_call(
    guard, dead_letters
):
    # The reliable transport delivers such an item as a substitute: the raw bytes as the
    # body and a header saying why. A bare protocol-1 call pushed onto the list is one.
    raw = json.dumps({"task": "t.add", "id": "x", "args": [1, 2]}).encode()
    handle = _consumer(guard, {"t.add": lambda *a: pytest.fail("ran")}).create_task_handler()
    message = _message(raw, "application/octet-stream", task=None,
                       headers={UNREADABLE_HEADER: "no properties"})  # fmt: skip
    handle(message)
    letter = _only_letter(dead_letters)
    assert letter.reason == "undecodable_message"
    assert raw_body_bytes(letter.request) == raw
    assert "not a kombu message envelope: no properties" in letter.error
    assert message.channel.acked == ["tag-1"]
    assert not guard.unreadable(_message(_call([1, 2])))


# -- the call in the body -----------------------------------------------------------------
def test_a_well_formed_call_passes(guard):
    assert guard.problem_with_call(add, _message(_call([1, 2])), None) is None
    assert guard.problem_with_call(add, _message(_call([], {"x": 1, "y": 2})), None) is None
    hybrid = {"task": "t.add", "id": "i", "args": [1, 2], "kwargs": {}}
    assert guard.problem_with_call(add, _message(b"", task=None), hybrid) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_call([1]), "t.add: add() missing 1 required positional argument: 'y'"),
        (_call([1, 2, 3]), "add() takes 2 positional arguments but 3 were given"),
        (_call([1, 2], {"z": 3}), "add() got an unexpected keyword argument 'z'"),
        (json.dumps([[], [1], {}]).encode(), "task arguments must be"),
        (json.dumps(["a", {}, {}]).encode(), "task arguments must be"),
        (json.dumps({"x": 1}).encode(), "not a task call"),
        (json.dumps("args").encode(), "not a task call"),
        (json.dumps([1, 2]).encode(), "not a task call"),
        (json.dumps({"args": "abc"}).encode(), "args must be a list"),
    ],
)
def test_a_malformed_call_is_named(guard, body, expected):
    problem = guard.problem_with_call(add, _message(body), None)
    assert problem is not None
    assert expected in problem


def test_a_call_without_a_task_id_is_refused(guard):
    assert "no task id" in guard.problem_with_call(
        add, _message(_call([1, 2]), headers={"id": None}), None
    )


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        (pickle.dumps([[1, 2], {}, {}]), "application/x-python-serialize", ContentDisallowed),
        (_call([1, 2]), "application/data", ContentDisallowed),
        (_call([1, 2]), None, ContentDisallowed),
        (_call([1, 2]), "text/plain", ContentDisallowed),
        (b"", "application/json", DecodeError),
        (b"{not json", "application/json", DecodeError),
        (b"\xff\xfe", "application/json", DecodeError),
    ],
)
def test_bodies_that_do_not_decode_go_to_celerys_hooks(guard, body, content_type, error):
    with pytest.raises(error):
        guard.problem_with_call(add, _message(body, content_type), None)


def test_the_screened_strategy_runs_only_good_calls(guard):
    ran: list[Any] = []
    strategy = guard.screened(add, lambda message, body, *rest: ran.append(message))
    good = _message(_call([1, 2]))
    strategy(good, None, "ack", "reject", [])
    assert ran == [good]
    with pytest.raises(InvalidTaskError, match="missing 1 required positional argument"):
        strategy(_message(_call([1])), None, "ack", "reject", [])
    assert ran == [good]


# -- Celery's hooks -------------------------------------------------------------------------
def _consumer(guard: IntakeGuard, strategies: dict[str, Any] | None = None) -> Any:
    """A GuardedConsumer with just what its message handler uses (no broker, no pool)."""
    consumer = GuardedConsumer.__new__(GuardedConsumer)
    consumer.__dict__["guard"] = guard
    consumer.strategies = strategies or {}
    consumer.on_task_message = set()
    consumer.restart_count = 0
    consumer._maximum_prefetch_restored = True
    consumer.connection_errors = ()
    consumer.controller = None
    return consumer


def test_every_kind_of_bad_message_reaches_the_store_through_the_real_handler(guard, dead_letters):
    ran: list[Any] = []
    strategies = {
        "t.add": guard.screened(add, lambda m, b, *rest: ran.append(m)),
        "t.anything": guard.screened(anything, lambda m, b, *rest: ran.append(m)),
    }
    handle = _consumer(guard, strategies).create_task_handler()
    sent = {
        "payload_too_large": _message(b"[" + b"1," * LIMIT + b"1]"),
        "undecodable_message": _message(b"{oops"),
        "unsupported_content_type": _message(pickle.dumps(1), "application/x-python-serialize"),
        "bad_task_signature": _message(_call([1])),
    }
    for message in sent.values():
        handle(message)
    handle(unknown := _message(_call(), task="t.nope"))
    handle(no_task := _message(json.dumps({"hello": "world"}).encode(), task=None))
    handle(good := _message(_call([1, 2])))
    handle(anything_goes := _message(_call([1], {"a": 2}), task="t.anything"))

    assert ran == [good, anything_goes]
    letters = {d.reason.value: d for d in dead_letters.find()}
    assert sorted(letters) == sorted(
        [
            "payload_too_large",
            "undecodable_message",
            "unsupported_content_type",
            "bad_task_signature",
        ]
    )
    assert dead_letters.count() == 6  # bad signature + unknown task, undecodable + no task
    for message in [*sent.values(), unknown, no_task]:
        assert message.channel.acked == ["tag-1"]
    assert good.channel.acked == []
    assert "no task named 't.nope'" in " ".join(d.error for d in dead_letters.find())


def test_hooks_map_to_reasons(guard, dead_letters):
    consumer = _consumer(guard)
    consumer.on_decode_error(_message(b"{1", task="a"), DecodeError("bad"))
    consumer.on_decode_error(_message(b"x", "application/x-yaml", task="b"), ContentDisallowed("y"))
    consumer.on_unknown_message(None, _message(b"{}", task=None))
    consumer.on_unknown_task(None, _message(_call([1]), task="nope"), KeyError("nope"))
    consumer.on_invalid_task(None, _message(_call([2]), task="c"), InvalidTaskError("bad eta"))
    reasons = sorted(d.reason.value for d in dead_letters.find())
    assert reasons == sorted(
        [
            "undecodable_message",
            "unsupported_content_type",
            "undecodable_message",
            "bad_task_signature",
            "bad_task_signature",
        ]
    )


def test_the_message_is_acked_only_after_its_dead_letter_is_stored(guard, dead_letters):
    message = _message(b"{oops")
    record = dead_letters.record

    def record_then_check(**kwargs: Any) -> Any:
        assert message.channel.acked == []
        return record(**kwargs)

    dead_letters.record = record_then_check  # type: ignore[method-assign]
    guard.decode_error(message, DecodeError("bad"))
    assert message.channel.acked == ["tag-1"]


def test_a_message_whose_dead_letter_cannot_be_stored_goes_back_to_the_queue(guard, dead_letters):
    def broken(**kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    dead_letters.record = broken  # type: ignore[method-assign]
    message = _message(b"{oops")
    guard.decode_error(message, DecodeError("bad"))
    assert message.channel.acked == []
    assert message.channel.rejected == [("tag-1", True)]


def test_a_replayed_message_refused_again_raises_the_replay_count(guard, dead_letters):
    old = dead_letters.record(
        reason=ReasonCode.bad_task_signature,
        error="e",
        request={"args": [], "kwargs": {"request": {"r": 1}, "x": 2}},
        request_id=None,
        now=NOW,
    )
    mark = ReplayMark.new(old.dead_letter_id)
    dead_letters.mark_replaying(old.dead_letter_id, mark.token)
    guard.too_large(_message(b"z" * (LIMIT + 1), headers=mark.header()))
    (letter,) = dead_letters.find()
    assert (letter.reason, letter.replay_count) == ("payload_too_large", 1)
    assert dead_letters.replaying() == {}


# -- nothing in a body crashes the guard ---------------------------------------------------
GUARD_PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@GUARD_PROPERTY
@given(st.binary(max_size=200), st.sampled_from(["application/json", None, "x/y"]))
def test_any_bytes_either_pass_name_a_problem_or_raise_a_decoding_error(guard, body, ctype):
    try:
        problem = guard.problem_with_call(add, _message(body, ctype), None)
    except (DecodeError, ContentDisallowed):
        return
    assert problem is None or isinstance(problem, str)


@GUARD_PROPERTY
@given(json_values)
def test_any_json_body_passes_or_names_a_problem(guard, value):
    problem = guard.problem_with_call(anything, _message(json.dumps(value).encode()), None)
    assert problem is None or isinstance(problem, str)


@GUARD_PROPERTY
@given(st.binary(max_size=3 * LIMIT))
def test_any_body_can_be_dead_lettered_and_read_back(guard, dead_letters, body):
    dead_letters.purge_all()
    guard.dead_letter(_message(body), ReasonCode.undecodable_message, "e")
    (letter,) = dead_letters.find()
    assert body.startswith(raw_body_bytes(letter.request)) or "[REDACTED" in letter.request


# -- queues by trust, depth -------------------------------------------------------------------
QUEUES = {"evals.requests": frozenset({"t.add"}), "evals.control": frozenset({"t.anything"})}


def _on(queue: str | None, message: Message) -> Message:
    message.delivery_info = {} if queue is None else {"routing_key": queue, "exchange": ""}
    return message


@pytest.fixture
def strict_guard(dead_letters, store) -> IntakeGuard:
    return IntakeGuard(dead_letters, max_payload_bytes=LIMIT, clock=lambda: NOW,
                       allowed_tasks=QUEUES, max_depth=16)  # fmt: skip


@pytest.mark.parametrize(
    ("queue", "task"),
    [("evals.requests", "t.anything"), ("evals.control", "t.add"), ("elsewhere", "t.add"),
     (None, "t.add")],
)  # fmt: skip
def test_a_task_runs_only_from_a_queue_that_may_carry_it(strict_guard, dead_letters, queue, task):
    ran: list[Any] = []
    screened = strict_guard.screened(tasks.tasks[task], lambda m, b, *rest: ran.append(m))
    message = _on(queue, _message(_call([1], {"y": 2}), task=task))
    screened(message, None, "ack", "reject", [])
    assert ran == []
    letter = _only_letter(dead_letters)
    assert letter.reason == "forbidden_task"
    assert f"task {task!r} may not be sent to queue {queue!r}" in letter.error
    assert message.channel.acked == ["tag-1"]


def test_allowed_tasks_run_from_their_queue(strict_guard, dead_letters):
    ran: list[Any] = []
    for queue, task in [("evals.requests", "t.add"), ("evals.control", "t.anything")]:
        screened = strict_guard.screened(tasks.tasks[task], lambda m, b, *rest: ran.append(m))
        screened(_on(queue, _message(_call([1, 2]), task=task)), None, "ack", "reject", [])
    assert len(ran) == 2
    assert dead_letters.count() == 0


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_message_nested_too_deep_is_dead_lettered_before_celery_builds_a_request(
    strict_guard, dead_letters, where
):
    # 600 deep: pickling the decoded arguments for the pool raised RecursionError in the
    # worker's main process, which stopped the worker (and the next one, after restore).
    deep = _nested(600)
    ran: list[Any] = []
    screened = strict_guard.screened(add, lambda m, b, *rest: ran.append(m))
    if where == "body":
        message = _message(_call([deep, 1]))
    else:
        message = _message(_call([1, 2]), headers={"x-deep": deep})
    assert len(message.body) < 4 * 1024
    screened(_on("evals.requests", message), None, "ack", "reject", [])
    assert ran == []
    letter = _only_letter(dead_letters)
    assert letter.reason == "payload_too_deep"
    assert f"message {where} nests lists and objects over 16 deep" in letter.error
    assert message.channel.acked == ["tag-1"]


def test_a_message_at_the_depth_limit_runs(strict_guard):
    ran: list[Any] = []
    screened = strict_guard.screened(add, lambda m, b, *rest: ran.append(m))
    # [args, kwargs, embed] is one level, args another: 14 more fit in 16.
    screened(_on("evals.requests", _message(_call([_nested(14), 1]))), None, "a", "r", [])
    assert len(ran) == 1


def test_where_the_broker_vouches_internal_queues_run_only_evalqs_senders(dead_letters, store):
    guard = IntakeGuard(dead_letters, max_payload_bytes=LIMIT, clock=lambda: NOW,
                        allowed_tasks=QUEUES, public_queues=frozenset({"evals.requests"}),
                        trusted_senders=frozenset({"evalq-worker", "evalq-ops"}))  # fmt: skip
    ran: list[Any] = []
    screened = guard.screened(anything, lambda m, b, *rest: ran.append(m))
    for sender in ("evalq-worker", "evalq-ops"):
        message = _on("evals.control", _message(_call(), task="t.anything"))
        message.properties = {"user_id": sender}
        screened(message, None, "ack", "reject", [])
    forged = _on("evals.control", _message(_call(), task="t.anything"))
    forged.properties = {"user_id": "team-a"}
    screened(forged, None, "ack", "reject", [])
    unsigned = _on("evals.control", _message(_call([2]), task="t.anything"))
    screened(unsigned, None, "ack", "reject", [])
    assert len(ran) == 2
    letters = dead_letters.find()
    assert {letter.reason for letter in letters} == {"forbidden_task"}
    errors = " ".join(letter.error for letter in letters)
    assert "comes from broker user 'team-a', not one of evalq's" in errors
    assert "comes from broker user None" in errors
    # On the producers' queue the sender is anyone's.
    public = guard.screened(add, lambda m, b, *rest: ran.append(m))
    public(_on("evals.requests", _message(_call([1, 2]))), None, "ack", "reject", [])
    assert len(ran) == 3
